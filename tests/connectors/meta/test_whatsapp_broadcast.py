"""A fix announcement reaches a WhatsApp subscriber outside the 24-hour window through the
configured template, exactly once: the real app, known issue, broadcaster and dispatcher, and
the fake Graph API."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bot.outreach.broadcasts import Broadcaster, report, resolve
from bot.pipeline.dispatcher import Dispatcher
from bot.store.models import (
    ChannelIdentity,
    KnownIssue,
    KnownIssueStatus,
    KnownIssueSubscription,
    Message,
    OutboxItem,
    OutboxStatus,
)
from bot.web.keys import CONNECTORS_KEY
from tests.bot.broadcast_support import run_until_done
from tests.connectors.meta.conftest import Channel, MetaApp, recorded

PHONE_NUMBER_ID = "109283746556473"
SANNE = "31612345678"
TEMPLATES = {"broadcast": {"name": "storing_opgelost", "languages": {"nl": "nl", "en": "en_US"},
                           "parameters": ["customer_name", "text"]}}


@pytest.fixture
def meta_channel() -> Channel:
    return Channel("whatsapp", "connectors.meta.whatsapp.WhatsAppConnector", "WHATSAPP",
                   {"phone_number_id": PHONE_NUMBER_ID, "templates": TEMPLATES})


def subscribe_sanne(meta: MetaApp) -> int:
    def unit(session: Any) -> int:
        identity = session.execute(select(ChannelIdentity).where(ChannelIdentity.external_id == SANNE)).scalar_one()
        issue = KnownIssue(root_cause="billing_amount", title="Storing in Utrecht", status=KnownIssueStatus.open,
                           text_nl="We weten van de storing.", text_en="We know about the outage.")
        session.add(issue)
        session.flush()
        session.add(KnownIssueSubscription(known_issue_id=issue.id, customer_id=identity.customer_id,
                                           identity_id=identity.id))
        return issue.id
    return meta.store.transaction(unit)


async def announce(meta: MetaApp, issue: int) -> int:
    broadcast = meta.store.transaction(resolve, issue, None, "De storing is opgelost.\nExcuses!", "Fixed!")
    dispatcher = Dispatcher(meta.store, meta.client.server.app[CONNECTORS_KEY])
    await run_until_done(meta.store, Broadcaster(meta.store, {"whatsapp": 100}, 1.0, interval_seconds=0.05),
                         dispatcher)
    return broadcast["broadcast_id"]


async def test_the_fix_announcement_goes_out_as_the_template_exactly_once(meta: MetaApp) -> None:
    await meta.post_ok(recorded("whatsapp", "text"))  # Sanne wrote to us ...
    issue = subscribe_sanne(meta)
    meta.age_inbound(hours=30)  # ... 30 hours ago: the window is closed
    broadcast = await announce(meta, issue)

    [call] = meta.graph.calls_to(f"{PHONE_NUMBER_ID}/messages")
    assert call.body["to"] == SANNE and call.body["type"] == "template"
    template = call.body["template"]
    assert template["name"] == "storing_opgelost" and template["language"] == {"code": "nl"}
    body = [c for c in template["components"] if c["type"] == "body"][0]
    assert [p["text"] for p in body["parameters"]] == ["Sanne de Vries", "De storing is opgelost. Excuses!"]
    result = meta.store.transaction(report, broadcast)
    assert (result["total"], result["sent"], result["failed"]) == (1, 1, 0)
    [item] = meta.query(select(OutboxItem))
    assert item.status == OutboxStatus.sent
    logged = meta.store.transaction(lambda s: s.get(Message, item.message_id))
    assert logged.payload["sent_as"]["template"] == "storing_opgelost"

    # Running everything again (a restart, a second resolve attempt's broadcaster) sends nothing more.
    dispatcher = Dispatcher(meta.store, meta.client.server.app[CONNECTORS_KEY])
    await run_until_done(meta.store, Broadcaster(meta.store, {"whatsapp": 100}, 1.0, interval_seconds=0.05),
                         dispatcher)
    assert len(meta.graph.calls_to(f"{PHONE_NUMBER_ID}/messages")) == 1


async def test_inside_the_window_the_announcement_is_a_plain_text(meta: MetaApp) -> None:
    await meta.post_ok(recorded("whatsapp", "text"))
    await announce(meta, subscribe_sanne(meta))
    [call] = meta.graph.calls_to(f"{PHONE_NUMBER_ID}/messages")
    assert call.body["type"] == "text" and call.body["text"]["body"] == "De storing is opgelost.\nExcuses!"


async def test_a_message_accepted_then_failed_for_the_window_ends_needs_template(meta: MetaApp) -> None:
    """WhatsApp may accept a free-form message and fail it later with 131047 (our clock said the
    window was open: a webhook delivered late, say): the item ends "needs a template"."""
    import copy

    from tests.connectors.meta.conftest import with_status_id

    await meta.post_ok(recorded("whatsapp", "text"))
    item = await meta.send("late", {"text": "Hoe beoordeel je ons?"}, SANNE)
    failed = copy.deepcopy(with_status_id(recorded("whatsapp", "status_failed"), item.channel_message_id))
    error = failed["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"][0]
    error.update(code=131047, title="Re-engagement message", message="Re-engagement message")
    assert (await meta.post_ok(failed))["receipts"] == 1
    after = meta.outbox(item.id)
    assert after.status == OutboxStatus.needs_template and after.delivery_status == "failed"
    assert "131047" in after.last_error and meta.outbound_message(item.id).status == "needs_template"
