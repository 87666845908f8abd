"""Known issues: the bot's answer while one is open, subscribing, and the console pages and JSON API
(real SQLite store, the real app)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, List

import pytest
from sqlalchemy import select

from bot.outreach import known_issues
from bot.cases.escalation import default_settings
from bot.config import DEFAULTS
from bot.customer_texts import customer_text
from bot.pipeline.drafting_policy import DraftingPolicy
from bot.pipeline.intake import store_inbound
from bot.pipeline.rasa_client import RasaReply
from bot.pipeline.service_buttons import button_payload, parse_command
from bot.pipeline.service_commands import carry_out
from bot.store.database import Store
from bot.store.models import (
    AuditEntry,
    Broadcast,
    BroadcastRecipient,
    KnownIssue,
    KnownIssueSubscription,
    OutboxItem,
)
from bot.pipeline.leases import claim_conversations
from bot.pipeline.worker import apply_reply, next_job
from connectors.base import InboundMessage
from tests.bot.broadcast_support import add_customer, open_issue
from tests.bot.console_support import api_login, app_client, console_login, hidden_field, store_of  # noqa: F401

POLICY = DraftingPolicy.from_config({**DEFAULTS["drafting"], "threshold": 0.0, "always_review": []})
SETTINGS = default_settings()


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    known_issues.forget_cache()
    yield
    known_issues.forget_cache()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_url(f"sqlite:///{tmp_path}/t.db")
    yield store
    store.close()


def receive(store: Store, message_id: str, text: str, kind: str = "text", sender: str = "42") -> Any:
    inbound = InboundMessage(channel="hook", channel_message_id=message_id, sender_id=sender, text=text, kind=kind)
    return store.transaction(store_inbound, inbound)


def answer(store: Store, conversation_id: int, intent: str, language: str = "nl") -> List[OutboxItem]:
    """The worker's path for one message, with a hand-built Rasa reply; returns what it queued."""
    store.transaction(claim_conversations, "w", 10)
    job = store.transaction(next_job, conversation_id, "w")
    assert job is not None
    command = parse_command(job.kind, job.text)
    if command is not None:
        store.transaction(carry_out, job, command)
        store.transaction(next_job, conversation_id, "w")
    else:
        parse = {"text": job.text, "intent": {"name": intent, "confidence": 0.97},
                 "intent_ranking": [{"name": intent, "confidence": 0.97}], "entities": [],
                 "language": {"name": language}}
        store.transaction(apply_reply, job, RasaReply([{"text": "Het antwoord van de bot."}], parse, []),
                          POLICY, "w", SETTINGS)
    return store.transaction(lambda s: s.execute(
        select(OutboxItem).where(OutboxItem.conversation_id == conversation_id).order_by(OutboxItem.id)).scalars().all())


def test_an_open_known_issue_changes_the_answer_and_yes_subscribes_once(store: Store) -> None:
    conversation = receive(store, "m1", "mijn rekening is te hoog").conversation_id
    before = answer(store, conversation, "bill_too_high")
    assert [i.payload["text"] for i in before] == ["Het antwoord van de bot."]

    issue = open_issue(store, "billing_amount")
    known_issues.forget_cache()
    receive(store, "m2", "mijn rekening is nog steeds te hoog")
    after = answer(store, conversation, "bill_too_high")[1:]
    assert after[0].payload["text"] == "We weten ervan: de rekening klopt niet."
    assert after[1].payload["text"] == customer_text("known_issue_offer", "nl")
    yes = after[1].payload["buttons"][0]["payload"]
    assert yes == button_payload("subscribe", known_issue=issue, answer="yes")

    # Another intent: the bot's own answer.
    receive(store, "m3", "meterstand doorgeven")
    assert answer(store, conversation, "meter_reading")[-1].payload["text"] == "Het antwoord van de bot."

    # "Yes", clicked twice: one subscription; confirmed, and asked for the general opt-in.
    receive(store, "m4", yes, kind="button")
    queued = answer(store, conversation, "-")
    receive(store, "m5", yes, kind="button")
    queued_again = answer(store, conversation, "-")
    subscriptions = store.transaction(lambda s: s.execute(select(KnownIssueSubscription)).scalars().all())
    assert [(s.known_issue_id, s.identity_id is not None) for s in subscriptions] == [(issue, True)]
    confirmation, offer = queued[-2:]
    assert confirmation.payload["text"] == customer_text("known_issue_subscribed", "nl")
    assert offer.payload["text"] == customer_text("opt_in_offer", "nl")
    assert [b["payload"] for b in offer.payload["buttons"]] == [button_payload("opt_in", answer="yes"),
                                                               button_payload("opt_in", answer="no")]
    assert queued_again[-1].payload["text"] == customer_text("opt_in_offer", "nl")  # still no opt-in


def test_no_thanks_does_not_subscribe(store: Store) -> None:
    issue = open_issue(store)
    conversation = receive(store, "n1", button_payload("subscribe", known_issue=issue, answer="no"), kind="button")
    queued = answer(store, conversation.conversation_id, "-")
    assert queued[-1].payload["text"] == customer_text("known_issue_declined", "nl")
    assert store.transaction(lambda s: s.execute(select(KnownIssueSubscription)).scalars().all()) == []


# ------------------------------------------------------------------ JSON API and console


async def test_agents_may_not_manage_known_issues(app_client) -> None:  # type: ignore[no-untyped-def]
    csrf = await api_login(app_client, "anna")
    for path in ("/api/known-issues", "/api/known-issues/1", "/api/known-issues/1/progress",
                 "/api/known-issues/1/report.csv"):
        assert (await app_client.get(path)).status == 403, path
    for path in ("/api/known-issues", "/api/known-issues/1/resolve"):
        response = await app_client.post(path, json={}, headers={"X-CSRF-Token": csrf})
        assert response.status == 403, path
    for path in ("/console/known-issues", "/console/known-issues/new", "/console/known-issues/1"):
        assert (await app_client.get(path, allow_redirects=False)).status == 403, path


async def test_open_view_and_resolve_through_the_api(app_client) -> None:  # type: ignore[no-untyped-def]
    store = store_of(app_client)
    csrf = await api_login(app_client, "piet")
    headers = {"X-CSRF-Token": csrf}
    body = {"root_cause": "billing_amount", "title": "Wrong bills in November", "text_nl": "We weten het.",
            "text_en": "We know."}

    # Bad input: 4xx with a reason, nothing written.
    for bad, status in (({**body, "root_cause": "nope"}, 400), ({**body, "title": " "}, 400),
                        ({**body, "text_en": "x" * 3000}, 400), ({k: v for k, v in body.items() if k != "text_nl"}, 400)):
        response = await app_client.post("/api/known-issues", json=bad, headers=headers)
        assert response.status == status, await response.text()
        assert "reason" in await response.json()
    assert (await app_client.post("/api/known-issues", data=b"{not json", headers=headers)).status == 400
    assert store.transaction(lambda s: s.execute(select(KnownIssue)).scalars().all()) == []

    created = await app_client.post("/api/known-issues", json=body, headers=headers)
    assert created.status == 201
    issue = (await created.json())["id"]
    again = await app_client.post("/api/known-issues", json=body, headers=headers)
    assert again.status == 409  # one open known issue per root cause
    assert (await app_client.get(f"/api/known-issues/{issue}/progress")).status == 404  # nothing announced yet

    customer = add_customer(store, subscribe_to=issue, language="en")
    listing = await (await app_client.get("/api/known-issues")).json()
    assert [(i["id"], i["subscribers"]) for i in listing["open"]] == [(issue, 1)] and listing["resolved"] == []

    bad = await app_client.post(f"/api/known-issues/{issue}/resolve", json={"fix_text_nl": "Opgelost", "fix_text_en": ""},
                                headers=headers)
    assert bad.status == 400
    for field, value in (("window_days", "x"), ("window_days", True), ("include_contacted", "maybe")):
        refused = await app_client.post(f"/api/known-issues/{issue}/resolve", headers=headers, json={
            "fix_text_nl": "Opgelost", "fix_text_en": "Fixed", field: value})
        assert refused.status == 400 and (await refused.json())["details"] == {"field": field}
    assert store.transaction(lambda s: s.execute(select(Broadcast)).scalars().all()) == []
    resolved = await app_client.post(f"/api/known-issues/{issue}/resolve",
                                     json={"fix_text_nl": "Opgelost", "fix_text_en": "Fixed", "window_days": 7,
                                           "include_contacted": True}, headers=headers)
    assert resolved.status == 200, await resolved.text()
    assert (await resolved.json())["recipients"] == 1
    twice = await app_client.post(f"/api/known-issues/{issue}/resolve",
                                  json={"fix_text_nl": "Opgelost", "fix_text_en": "Fixed"}, headers=headers)
    assert twice.status == 409

    progress = await (await app_client.get(f"/api/known-issues/{issue}/progress")).json()
    assert {k: progress[k] for k in ("total", "pending", "queued", "sent", "failed", "skipped", "rate", "status")} == {
        "total": 1, "pending": 1, "queued": 0, "sent": 0, "failed": 0, "skipped": 0, "rate": 0.0, "status": "sending"}
    detail = await (await app_client.get(f"/api/known-issues/{issue}")).json()
    assert detail["status"] == "resolved" and detail["broadcast"]["total"] == 1
    csv_response = await app_client.get(f"/api/known-issues/{issue}/report.csv")
    assert csv_response.status == 200 and csv_response.content_type == "text/csv"
    assert f"{customer['customer_id']},Customer" in await csv_response.text()
    actions = store.transaction(lambda s: s.execute(select(AuditEntry.action)).scalars().all())
    assert "known_issue.open" in actions and "known_issue.resolve" in actions
    # Now a new one may be opened for the same root cause.
    assert (await app_client.post("/api/known-issues", json=body, headers=headers)).status == 201


async def test_console_pages_open_and_resolve(app_client) -> None:  # type: ignore[no-untyped-def]
    store = store_of(app_client)
    await console_login(app_client, "ada")
    page = await app_client.get("/console/known-issues/new")
    assert page.status == 200
    html = await page.text()
    csrf = hidden_field(html, "csrf_token")
    assert 'value="billing_amount"' in html

    form = {"csrf_token": csrf, "root_cause": "billing_amount", "title": "<b>Wrong</b> bills",
            "text_nl": "We weten het.", "text_en": ""}
    refused = await app_client.post("/console/known-issues", data=form, allow_redirects=False)
    assert refused.status == 400 and "&lt;b&gt;Wrong&lt;/b&gt; bills" in await refused.text()  # kept, escaped
    assert store.transaction(lambda s: s.execute(select(KnownIssue)).scalars().all()) == []
    created = await app_client.post("/console/known-issues", data={**form, "text_en": "We know."},
                                    allow_redirects=False)
    assert created.status == 303
    location = created.headers["Location"]
    issue = int(location.split("/")[-1].split("?")[0])
    add_customer(store, subscribe_to=issue)
    add_customer(store, contacted_about="billing_amount", opt_in=True)

    listing = await (await app_client.get("/console/known-issues")).text()
    assert f'href="/console/known-issues/{issue}"' in listing and "&lt;b&gt;Wrong" in listing
    view = await (await app_client.get(location)).text()
    assert 'action="/console/known-issues/%d/resolve"' % issue in view

    bad = await app_client.post(f"/console/known-issues/{issue}/resolve",
                                data={"csrf_token": csrf, "fix_text_nl": "Opgelost", "fix_text_en": "Fixed",
                                      "window_days": "-3", "include_contacted": "1"}, allow_redirects=False)
    assert bad.status == 400 and "window_days" in await bad.text()
    done = await app_client.post(f"/console/known-issues/{issue}/resolve",
                                 data={"csrf_token": csrf, "fix_text_nl": "Opgelost", "fix_text_en": "Fixed",
                                       "window_days": "14", "include_contacted": "1"}, allow_redirects=False)
    assert done.status == 303
    recipients = store.transaction(lambda s: s.execute(select(BroadcastRecipient.reason)).scalars().all())
    assert sorted(recipients) == ["contacted", "subscriber"]
    view = await (await app_client.get(f"/console/known-issues/{issue}")).text()
    assert 'id="broadcast-progress"' in view and "/api/known-issues/%d/progress" % issue in view
    # Without the CSRF token: refused.
    assert (await app_client.post(f"/console/known-issues/{issue}/resolve", data={"fix_text_nl": "x"},
                                  allow_redirects=False)).status == 403
