"""Fix announcements on a real SQLite store, delivered through the real dispatcher and signed-webhook
connector to a real rate-limited platform on loopback: one message per customer, paced, resumable."""
from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
from sqlalchemy import select, update

from bot.outreach import broadcasts
from bot.bench.broadcast import RateLimitedPlatform
from bot.events import OutboxQueued
from bot.outreach.broadcasts import Broadcaster, advance, progress, report, report_csv, resolve
from bot.pipeline.dispatcher import Dispatcher
from bot.errors import InvalidInput, Conflict, NotFound
from bot.store.database import Store
from bot.store.models import (
    AuditEntry,
    Broadcast,
    BroadcastRecipient,
    ChannelIdentity,
    KnownIssue,
    OutboxItem,
    OutboxStatus,
)
from connectors.webhook import SignedWebhookConnector
from tests.bot.broadcast_support import CHANNEL, SECRET, add_customer, open_issue, rows, run_until_done
from tests.bot.console_support import app_client, console_login, store_of  # noqa: F401


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_url(f"sqlite:///{tmp_path}/t.db")
    yield store
    store.close()


@pytest.fixture
async def platform() -> AsyncIterator[RateLimitedPlatform]:
    async with RateLimitedPlatform(SECRET, rate=200) as fake:
        yield fake


def connector_for(platform: RateLimitedPlatform, monkeypatch: pytest.MonkeyPatch, rate: float = 200) -> SignedWebhookConnector:
    monkeypatch.setenv("BROADCAST_TEST_SECRET", SECRET)
    return SignedWebhookConnector.from_config(CHANNEL, {"callback_url": platform.url, "secret_env": "BROADCAST_TEST_SECRET",
                                                        "rate_limit_per_second": rate})


def fix(store: Store, issue: int, **kwargs):  # type: ignore[no-untyped-def]
    return store.transaction(resolve, issue, None, "Opgelost!", "Fixed!", **kwargs)


# ------------------------------------------------------------------ choosing recipients


def test_resolving_creates_one_recipient_per_customer_in_one_transaction(store: Store) -> None:
    issue = open_issue(store)
    both = add_customer(store, subscribe_to=issue, contacted_about="billing_amount", opt_in=True, language="en")
    subscriber = add_customer(store, subscribe_to=issue)
    contacted = add_customer(store, contacted_about="billing_amount", opt_in=True)
    add_customer(store, contacted_about="billing_amount", opt_in=False)  # no opt-in: never
    add_customer(store, contacted_about="billing_amount")  # no opt-in row at all: never
    add_customer(store, contacted_about="billing_amount", opt_in=True, contacted_days_ago=30)  # outside the window
    add_customer(store, contacted_about="meter_reading", opt_in=True)  # another root cause

    result = fix(store, issue, window_days=14, include_contacted=True)

    assert result["recipients"] == 3 and result["subscribers"] == 2 and result["contacted"] == 1
    recipients = rows(store, BroadcastRecipient)
    assert sorted((r.customer_id, r.reason, r.status, r.language) for r in recipients) == sorted([
        (both["customer_id"], "subscriber", "pending", "en"),
        (subscriber["customer_id"], "subscriber", "pending", "nl"),
        (contacted["customer_id"], "contacted", "pending", "nl"),
    ])
    [issue_row] = rows(store, KnownIssue)
    assert issue_row.status.value == "resolved" and issue_row.fix_text_en == "Fixed!"
    [entry] = [a for a in rows(store, AuditEntry) if a.action == "known_issue.resolve"]
    assert entry.details["recipients"] == 3


def test_without_the_checkbox_only_subscribers_are_told(store: Store) -> None:
    issue = open_issue(store)
    add_customer(store, subscribe_to=issue)
    add_customer(store, contacted_about="billing_amount", opt_in=True)
    assert fix(store, issue)["recipients"] == 1


def test_bad_input_changes_nothing(store: Store) -> None:
    issue = open_issue(store)
    add_customer(store, subscribe_to=issue)
    # a window of "x" or include_contacted "maybe" never reaches the domain: the web layer refuses
    # them (tests/bot/outreach/test_known_issues.py, tests/bot/web/test_request_fields.py)
    for kwargs, field in (({"window_days": 0}, "window_days"), ({"window_days": 9999}, "window_days")):
        with pytest.raises(InvalidInput) as caught:
            fix(store, issue, **kwargs)
        assert caught.value.details["field"] == field
    with pytest.raises(InvalidInput):
        store.transaction(resolve, issue, None, "  ", "Fixed!")
    with pytest.raises(NotFound):
        fix(store, 999)
    assert rows(store, Broadcast) == [] and rows(store, BroadcastRecipient) == []
    assert rows(store, KnownIssue)[0].status.value == "open"
    fix(store, issue)
    with pytest.raises(Conflict):
        fix(store, issue)  # resolving twice: the second is refused
    assert len(rows(store, Broadcast)) == 1


def test_a_customer_without_a_reachable_channel_is_skipped_at_once(store: Store) -> None:
    issue = open_issue(store)
    gone = add_customer(store, subscribe_to=issue)
    store.transaction(lambda s: s.execute(update(ChannelIdentity).where(
        ChannelIdentity.customer_id == gone["customer_id"]).values(reachable=False)))
    result = fix(store, issue)
    assert result["skipped"] == 1
    [recipient] = rows(store, BroadcastRecipient)
    assert recipient.status == "skipped" and recipient.error == "no reachable channel"
    assert rows(store, Broadcast)[0].status.value == "done"  # nothing left to send


# ------------------------------------------------------------------ pacing


def test_the_broadcaster_keeps_only_a_few_seconds_of_messages_queued(store: Store) -> None:
    issue = open_issue(store)
    for _ in range(40):
        add_customer(store, subscribe_to=issue)
    broadcast_id = fix(store, issue)["broadcast_id"]
    rates = {CHANNEL: 5.0}
    assert store.transaction(advance, broadcast_id, rates, 2.0) == 10  # 2 s × 5/s
    assert store.transaction(advance, broadcast_id, rates, 2.0) == 0  # nothing sent yet: no more
    pending = rows(store, OutboxItem)
    assert len(pending) == 10 and all(item.source == "broadcast" for item in pending)
    # Three delivered: three more may go in.
    store.transaction(lambda s: s.execute(update(OutboxItem).where(OutboxItem.id.in_([i.id for i in pending[:3]]))
                                          .values(status=OutboxStatus.sent)))
    assert store.transaction(advance, broadcast_id, rates, 2.0) == 3
    counts = store.transaction(progress, broadcast_id)
    assert (counts["total"], counts["sent"], counts["queued"], counts["pending"]) == (40, 3, 10, 27)


# ------------------------------------------------------------------ delivery


async def test_everyone_gets_it_once_in_their_language_with_a_delivery_report(
        store: Store, platform: RateLimitedPlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    issue = open_issue(store)
    people = [add_customer(store, subscribe_to=issue, language="en" if n % 2 else "nl") for n in range(12)]
    platform.refuse = {people[3]["recipient"]: 400, people[4]["recipient"]: 410}
    connector = connector_for(platform, monkeypatch)
    await connector.start()
    try:
        dispatcher = Dispatcher(store, {CHANNEL: connector}, max_attempts=2)
        broadcaster = Broadcaster(store, {CHANNEL: 200}, 1.0, interval_seconds=0.05)
        broadcast_id = fix(store, issue)["broadcast_id"]
        await run_until_done(store, broadcaster, dispatcher)
    finally:
        await connector.stop()

    texts = {v["recipient"]: v["text"] for v in platform.accepted.values()}
    assert len(texts) == 10
    for n, person in enumerate(people):
        if n in (3, 4):
            assert person["recipient"] not in texts
        else:
            assert texts[person["recipient"]] == ("Fixed!" if n % 2 else "Opgelost!")
            assert len(platform.per_recipient[person["recipient"]]) == 1

    result = store.transaction(report, broadcast_id)
    assert result["status"] == "done" and result["finished_at"] is not None
    assert (result["total"], result["sent"], result["failed"], result["skipped"]) == (12, 10, 2, 0)
    reasons = {f["recipient"]: f["error"] for f in result["failures"]}
    assert "400" in reasons[people[3]["recipient"]] and "410" in reasons[people[4]["recipient"]]
    table = list(csv.DictReader(io.StringIO(store.transaction(report_csv, broadcast_id))))
    assert len(table) == 12 and {r["status"] for r in table} == {"sent", "failed"}
    assert table[0]["reason"] == "subscriber" and table[0]["channel"] == CHANNEL
    # The announcement is in each customer's transcript too.
    outbox = rows(store, OutboxItem)
    assert all(item.conversation_id is not None and item.idempotency_key.startswith(f"broadcast:{broadcast_id}:")
               for item in outbox)


async def test_a_broadcast_killed_half_way_and_restarted_delivers_each_recipient_exactly_once(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    async with RateLimitedPlatform(SECRET, rate=25) as platform:
        issue = open_issue(store)
        people = [add_customer(store, subscribe_to=issue) for _ in range(50)]
        broadcast_id = fix(store, issue)["broadcast_id"]

        # First life: broadcaster and dispatcher run for a while, then die mid-way (cancelled
        # between any two awaits, like a crash; no clean-up runs).
        connector = connector_for(platform, monkeypatch, rate=25)
        await connector.start()
        dispatcher = Dispatcher(store, {CHANNEL: connector}, owner="dispatcher@test:1")
        broadcaster = Broadcaster(store, {CHANNEL: 25}, 1.0, interval_seconds=0.05)
        store.events.subscribe(OutboxQueued, lambda _: dispatcher.wake())  # as bot.service wires it
        tasks = [asyncio.create_task(broadcaster.run()), asyncio.create_task(dispatcher.run())]
        while len(platform.accepted) < 20:
            await asyncio.sleep(0.01)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await connector.stop()
        first_life = len(platform.accepted)
        assert first_life < 50
        halfway = store.transaction(progress, broadcast_id)
        assert halfway["status"] == "sending" and halfway["pending"] > 0

        # Second life: new objects on the same store (the same replica name takes its leases back).
        connector = connector_for(platform, monkeypatch, rate=25)
        await connector.start()
        try:
            dispatcher = Dispatcher(store, {CHANNEL: connector}, owner="dispatcher@test:1")
            broadcaster = Broadcaster(store, {CHANNEL: 25}, 1.0, interval_seconds=0.05)
            await run_until_done(store, broadcaster, dispatcher)
        finally:
            await connector.stop()

        for person in people:
            assert len(platform.per_recipient[person["recipient"]]) == 1, person
        assert len(platform.accepted) == 50
        # A message cut off mid-request may be sent again with the same key (the platform
        # deduplicates on it); never more than the few in flight at the kill.
        assert platform.same_key_retries <= 3
        final = store.transaction(progress, broadcast_id)
        assert (final["status"], final["sent"], final["total"]) == ("done", 50, 50)
        keys = store.transaction(lambda s: s.execute(select(OutboxItem.idempotency_key)).scalars().all())
        assert len(keys) == len(set(keys)) == 50


# ------------------------------------------------------------------ the console's delivery report


async def test_the_known_issue_page_shows_the_delivery_report_when_done(
        app_client, platform: RateLimitedPlatform, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    store = store_of(app_client)
    issue = open_issue(store)
    people = [add_customer(store, subscribe_to=issue) for _ in range(3)]
    platform.refuse = {people[1]["recipient"]: 400}
    fix(store, issue)
    connector = connector_for(platform, monkeypatch)
    await connector.start()
    try:
        dispatcher = Dispatcher(store, {CHANNEL: connector})
        await run_until_done(store, Broadcaster(store, {CHANNEL: 200}, 1.0, interval_seconds=0.05), dispatcher)
    finally:
        await connector.stop()
    await console_login(app_client, "piet")
    html = await (await app_client.get(f"/console/known-issues/{issue}")).text()
    assert 'id="delivery-report"' in html and "Failures" in html and "callback answered 400" in html
    assert f'href="/console/known-issues/{issue}/report.csv"' in html
    progress_json = await (await app_client.get(f"/api/known-issues/{issue}/progress")).json()
    assert (progress_json["status"], progress_json["sent"], progress_json["failed"]) == ("done", 2, 1)
    table = await (await app_client.get(f"/console/known-issues/{issue}/report.csv")).text()
    assert len(list(csv.DictReader(io.StringIO(table)))) == 3


# ------------------------------------------------------------------ the benchmark's contract


def test_bench_broadcast_prints_the_promised_figures(capsys: pytest.CaptureFixture) -> None:
    from bot.cli import main

    assert main(["bench", "broadcast", "--recipients", "60", "--rate", "30", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert {"recipients", "delivered", "duplicates", "seconds", "rate_limit", "efficiency"} <= set(figures)
    assert (figures["recipients"], figures["delivered"], figures["duplicates"], figures["rate_limit"]) == (60, 60, 0, 30)
