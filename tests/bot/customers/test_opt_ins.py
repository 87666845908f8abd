"""No proactive message without opt-in: who gets a fix announcement, the opt-in buttons, and "stop"
(real SQLite store; delivery through the real dispatcher to a real platform on loopback)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import select

from bot.bench.broadcast import RateLimitedPlatform
from bot.outreach.broadcasts import Broadcaster, resolve
from bot.customer_texts import customer_text
from bot.pipeline.dispatcher import Dispatcher
from bot.pipeline.intake import store_inbound
from bot.customers.opt_ins import may_contact, opted_out
from bot.pipeline.service_buttons import button_payload, parse_command
from bot.pipeline.service_commands import carry_out
from bot.store.database import Store
from bot.store.models import BroadcastRecipient, KnownIssueSubscription, OptIn, OutboxItem
from bot.pipeline.leases import claim_conversations
from bot.pipeline.worker import next_job
from connectors.base import InboundMessage
from connectors.webhook import SignedWebhookConnector
from tests.bot.broadcast_support import CHANNEL, SECRET, add_customer, open_issue, rows, run_until_done


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_url(f"sqlite:///{tmp_path}/t.db")
    yield store
    store.close()


def say(store: Store, recipient: str, text: str, kind: str = "text", language: str = "nl") -> Any:
    """A customer message handled the way the worker handles service commands; returns what was queued."""
    inbound = InboundMessage(channel=CHANNEL, channel_message_id=f"{recipient}-{text}-{kind}", sender_id=recipient,
                             text=text, kind=kind, language_hint=language)
    conversation_id = store.transaction(store_inbound, inbound).conversation_id
    store.transaction(claim_conversations, "w", 10)
    job = store.transaction(next_job, conversation_id, "w")
    command = parse_command(job.kind, job.text)
    assert command is not None
    store.transaction(carry_out, job, command)
    store.transaction(next_job, conversation_id, "w")
    return store.transaction(lambda s: s.execute(
        select(OutboxItem).where(OutboxItem.conversation_id == conversation_id).order_by(OutboxItem.id.desc())
        .limit(1)).scalar_one_or_none())


async def test_no_proactive_message_without_opt_in(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    issue = open_issue(store)
    subscriber = add_customer(store, subscribe_to=issue)
    opted_in = add_customer(store, contacted_about="billing_amount", opt_in=True, language="en")
    never_asked = add_customer(store, contacted_about="billing_amount")
    said_no = add_customer(store, contacted_about="billing_amount", opt_in=False)
    stops_later = add_customer(store, subscribe_to=issue)
    opted_in_stops_later = add_customer(store, contacted_about="billing_amount", opt_in=True)
    store.transaction(resolve, issue, None, "Opgelost!", "Fixed!", 14, True)

    # Between the resolve and the delivery two customers send "stop": they are skipped.
    assert say(store, stops_later["recipient"], "stop").payload["text"] == customer_text("opted_out", "nl")
    say(store, opted_in_stops_later["recipient"], "Stoppen!")

    async with RateLimitedPlatform(SECRET, rate=100) as platform:
        monkeypatch.setenv("OPT_IN_TEST_SECRET", SECRET)
        connector = SignedWebhookConnector.from_config(CHANNEL, {
            "callback_url": platform.url, "secret_env": "OPT_IN_TEST_SECRET", "rate_limit_per_second": 100})
        await connector.start()
        try:
            dispatcher = Dispatcher(store, {CHANNEL: connector})
            await run_until_done(store, Broadcaster(store, {CHANNEL: 100}, 1.0, interval_seconds=0.05), dispatcher)
        finally:
            await connector.stop()
    # The platform also got the two "stop" confirmations (they were in the outbox); the
    # announcement went to the subscriber and the opted-in customer only.
    announced = {v["recipient"]: v["text"] for k, v in platform.accepted.items() if k.startswith("broadcast:")}
    assert announced == {subscriber["recipient"]: "Opgelost!", opted_in["recipient"]: "Fixed!"}
    for person in (never_asked, said_no):
        assert person["recipient"] not in platform.per_recipient
    status = {r.customer_id: (r.status, r.error) for r in rows(store, BroadcastRecipient)}
    assert status == {subscriber["customer_id"]: ("sent", None), opted_in["customer_id"]: ("sent", None),
                      stops_later["customer_id"]: ("skipped", "opted out"),
                      opted_in_stops_later["customer_id"]: ("skipped", "opted out")}


def test_the_opt_in_buttons_record_the_choice_and_confirm_in_the_customers_language(store: Store) -> None:
    customer = add_customer(store, language="en")
    assert not store.transaction(may_contact, customer["customer_id"])
    yes = say(store, customer["recipient"], button_payload("opt_in", answer="yes"), kind="button", language="en")
    assert yes.payload["text"] == customer_text("opted_in", "en")
    assert store.transaction(may_contact, customer["customer_id"])
    no = say(store, customer["recipient"], button_payload("opt_in", answer="no"), kind="button", language="en")
    assert no.payload["text"] == customer_text("opt_in_declined", "en")
    assert not store.transaction(may_contact, customer["customer_id"])
    assert not store.transaction(opted_out, customer["customer_id"])  # "no, thanks" is not "stop"
    [row] = rows(store, OptIn)
    assert (row.proactive, row.source) == (False, "button")


def test_a_forged_opt_in_answer_changes_nothing(store: Store) -> None:
    customer = add_customer(store)
    assert say(store, customer["recipient"], button_payload("opt_in", answer="maybe"), kind="button") is None
    assert rows(store, OptIn) == []


def test_stop_opts_out_removes_subscriptions_and_confirms(store: Store) -> None:
    issue = open_issue(store)
    customer = add_customer(store, subscribe_to=issue, opt_in=True, contacted_about="billing_amount")
    confirmation = say(store, customer["recipient"], "STOP")
    assert confirmation.payload["text"] == customer_text("opted_out", "nl")
    assert store.transaction(opted_out, customer["customer_id"])
    assert rows(store, KnownIssueSubscription) == []
    result = store.transaction(resolve, issue, None, "Opgelost!", "Fixed!", 14, True)
    assert result["recipients"] == 0  # neither as subscriber nor as an opted-in contact
