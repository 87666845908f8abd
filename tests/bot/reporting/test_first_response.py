"""The report's first response and bot / human split on a history made by the real message
path (issue #16): the service's own texts (an attachment's acknowledgement, a handover
notice) are no response, and a contact waits for the draft an agent answers hours later.

The history, on SQLite and PostgreSQL (times retimed from an evening T, so every figure is known):

* A: a sticker at T, its acknowledgement 0.008 s later, an empty draft; an agent answers it
  (edits the draft) at T + 10 h.
* B: a question at T + 1 h, answered by the bot 2 s later (auto-sent).
* C: a question at T + 2 h that Rasa hands over: a case, the handover notice 1 s later, the
  agent's reply at T + 2 h 10 min, the case closed.

Before the fix: A closed idle at T + 31 min as a bot contact with a 0.008 s first response
(and a rating asked while the sticker was unanswered); C's first response was the notice
(1 s): median 1.0 s, 2 bot / 1 human. Now: 36000 s, 2 s, 600 s: median 600 s, 1 bot / 2 human.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from sqlalchemy import select, update

from bot.cases import escalation as cases
from bot.cases.escalation import CaseSettings, default_settings
from bot.config import DEFAULTS
from bot.customers.contacts import close_idle, idle_conversations
from bot.opening_hours import WEEKDAYS, OpeningHours
from bot.pipeline.drafting_policy import DraftingPolicy
from bot.pipeline.intake import store_inbound
from bot.pipeline.leases import claim_conversations
from bot.pipeline.rasa_client import RasaReply
from bot.pipeline.worker import apply_reply, next_job, route_attachment
from bot.reporting import recurring_issues as reports
from bot.review import decisions
from bot.store.database import Store
from bot.store.models import Case, Contact, Conversation, Direction, Draft, Message, OutboxItem, utcnow
from bot.accounts import create_user
from connectors.base import InboundMessage
from tests.conftest import fresh_store

POLICY = DraftingPolicy.from_config(DEFAULTS["drafting"])
SETTINGS = CaseSettings(default_settings().taxonomy,
                        OpeningHours.from_config({"timezone": "UTC", **{d: "closed" for d in WEEKDAYS}}))
# an evening three days ago: the whole history lies in the past, more than a day before now
T = (utcnow() - dt.timedelta(days=3)).replace(hour=20, minute=0, second=0, microsecond=0)
IDLE = 30


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    yield from fresh_store(request.param, tmp_path, "webcare_first_response")


def receive(store: Store, message_id: str, sender: str, text: str, **kwargs: Any) -> Any:
    return store.transaction(store_inbound, InboundMessage(
        channel="telegram", channel_message_id=message_id, sender_id=sender, text=text, **kwargs))


def job_for(store: Store, conversation_id: int) -> Any:
    store.transaction(claim_conversations, "w", 10)
    job = store.transaction(next_job, conversation_id, "w")
    assert job is not None
    return job


def parse(text: str, intent: str, confidence: float) -> Dict[str, Any]:
    return {"text": text, "intent": {"name": intent, "confidence": confidence},
            "intent_ranking": [{"name": intent, "confidence": confidence}], "entities": [],
            "language": {"name": "nl"}}


def retime(store: Store, conversation_id: int, seconds: List[float]) -> None:
    """Give the conversation's messages not retimed yet (oldest first) the times T + ``seconds``;
    the conversation's last customer message time follows."""
    def apply(session: Any) -> None:
        messages = session.execute(select(Message).where(Message.conversation_id == conversation_id)
                                   .order_by(Message.id)).scalars().all()
        fresh = [m for m in messages if m.created_at > T + dt.timedelta(days=1)]
        assert len(fresh) == len(seconds), [(m.direction, m.text) for m in fresh]
        for message, offset in zip(fresh, seconds):
            message.created_at = T + dt.timedelta(seconds=offset)
        last = max(m.created_at for m in messages if m.direction == Direction.inbound)
        session.execute(update(Conversation).where(Conversation.id == conversation_id).values(last_message_at=last))
    store.transaction(apply)


def sweep(store: Store, now: dt.datetime) -> List[int]:
    """The contact closer's sweep at ``now``; what it queues (a rating question) is dated ``now``."""
    made = []
    for conversation_id in store.transaction(idle_conversations, IDLE, now):
        contact_id = store.transaction(close_idle, conversation_id, SETTINGS.taxonomy, IDLE, True, now)
        if contact_id is not None:
            made.append(contact_id)
    store.transaction(lambda s: s.execute(
        update(Message).where(Message.created_at > T + dt.timedelta(days=1)).values(created_at=now)))
    return made


def seed_history(store: Store) -> Dict[str, int]:
    """Customers A, B, C as in the module docstring; returns their conversation ids."""
    agent = store.transaction(lambda s: create_user(s, "anna", "correct horse battery", "agent"))

    # A: a sticker, acknowledged at once; an agent answers the next morning
    a = receive(store, "a1", "100", "[sticker]", kind="attachment", metadata={"attachment": "sticker"})
    assert store.transaction(route_attachment, job_for(store, a.conversation_id)) is True
    retime(store, a.conversation_id, [0, 0.008])
    sweep(store, T + dt.timedelta(minutes=IDLE + 1))  # the evening's sweep
    draft_id = store.transaction(lambda s: s.execute(
        select(Draft.id).where(Draft.conversation_id == a.conversation_id)).scalar_one())
    store.transaction(decisions.edit, draft_id, agent, "Leuke sticker! Waarmee kan ik je helpen?")
    retime(store, a.conversation_id, [10 * 3600])

    # B: the bot answers (auto-sent)
    b = receive(store, "b1", "200", "mijn rekening is te hoog")
    store.transaction(apply_reply, job_for(store, b.conversation_id),
                      RasaReply([{"text": "Dat zoek ik voor je uit."}], parse("mijn rekening is te hoog",
                                                                             "bill_too_high", 0.95), []),
                      POLICY, "w", SETTINGS)
    retime(store, b.conversation_id, [3600, 3602])

    # C: Rasa hands over: the notice, then the agent's reply; the agent closes the case
    c = receive(store, "c1", "300", "ik wil een mens spreken")
    store.transaction(apply_reply, job_for(store, c.conversation_id),
                      RasaReply([{"custom": {"webcare": {"handover": {"reason": "request_human"}}}}],
                                parse("ik wil een mens spreken", "request_human", 0.97), []),
                      POLICY, "w", SETTINGS)
    retime(store, c.conversation_id, [7200, 7201])
    case_id = store.transaction(lambda s: s.execute(
        select(Case.id).where(Case.conversation_id == c.conversation_id)).scalar_one())
    store.transaction(cases.reply, case_id, agent, "Ik help je verder.", "token-c1-0001")
    retime(store, c.conversation_id, [7800])
    store.transaction(cases.close, case_id, agent, "service_complaint", "Geholpen.", SETTINGS)

    sweep(store, T + dt.timedelta(hours=10, minutes=IDLE + 1))  # the next morning's sweep
    return {"A": a.conversation_id, "B": b.conversation_id, "C": c.conversation_id}


def test_the_reports_count_the_first_real_answer(store: Store) -> None:
    conversations = seed_history(store)
    contacts = {c.conversation_id: c for c in store.transaction(
        lambda s: s.execute(select(Contact)).scalars().all())}
    by_customer = {name: contacts.get(cid) for name, cid in conversations.items()}
    figures = {name: (c.handled_by, c.first_response_seconds) if c else None for name, c in by_customer.items()}
    assert figures == {"A": ("human", 36000.0), "B": ("bot", 2.0), "C": ("human", 600.0)}

    report = store.transaction(reports.recurring_issue_report,
                               reports.Period(T - dt.timedelta(hours=1), T + dt.timedelta(days=1)), SETTINGS.taxonomy)
    totals = report["totals"]
    assert (totals["contacts"], totals["bot_contacts"], totals["human_contacts"]) == (3, 1, 2)
    assert totals["median_first_response_seconds"] == 600.0

    # every rating was asked after the customer's answer, never while they still waited
    answers = store.transaction(lambda s: {m.conversation_id: m.created_at for m in s.execute(
        select(Message).where(Message.sender.like("agent:%"))).scalars()})
    contact_a = by_customer["A"]
    assert contact_a.csat_asked_at is not None and contact_a.csat_asked_at > answers[conversations["A"]]
    asked = store.transaction(lambda s: s.execute(
        select(OutboxItem.idempotency_key).where(OutboxItem.idempotency_key.like("csat:%"))).scalars().all())
    assert sorted(asked) == sorted(f"csat:{c.id}" for c in contacts.values())
