"""Identity linking: one customer, many channels, one history (SQLite and PostgreSQL)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import select

from bot.errors import InvalidInput, NotFound
from bot.customers.identity_linking import customer_history, is_merged, link_identity
from bot.pipeline.intake import store_inbound
from bot.store.database import Store
from bot.store.models import (
    AuditEntry,
    Base,
    Case,
    ChannelIdentity,
    Conversation,
    Customer,
    Direction,
    Message,
    utcnow,
)
from connectors.base import InboundMessage


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        store = Store.from_url(f"sqlite:///{tmp_path}/link.db")
    else:
        store = Store.from_url(request.getfixturevalue("pg_url"))
        with store.engine.begin() as connection:  # each test starts empty
            connection.exec_driver_sql(
                f"TRUNCATE {', '.join(Base.metadata.tables)} RESTART IDENTITY CASCADE")
    yield store
    store.close()


def say(store: Store, channel: str, sender: str, message_id: str, text: str, name: str) -> int:
    """A customer message through the real intake; returns its conversation id."""
    inbound = InboundMessage(channel=channel, channel_message_id=message_id, sender_id=sender, text=text,
                             sender_name=name)
    return store.transaction(store_inbound, inbound).conversation_id


def answer(store: Store, conversation_id: int, text: str, intent: str, confidence: float) -> None:
    """The worker's part: the inbound message's NLU result and the bot's reply, a bit later."""
    def work(session) -> None:  # type: ignore[no-untyped-def]
        inbound = session.execute(select(Message).where(Message.conversation_id == conversation_id)
                                  .order_by(Message.id.desc())).scalars().first()
        inbound.nlu = {"intent": {"name": intent, "confidence": confidence}, "entities": []}
        session.add(Message(conversation_id=conversation_id, direction=Direction.outbound,
                            channel=inbound.channel, sender="bot", text=text,
                            created_at=inbound.created_at + dt.timedelta(seconds=1)))
    store.transaction(work)


def identity_of(store: Store, conversation_id: int) -> int:
    return store.transaction(lambda s: s.get(Conversation, conversation_id).identity_id)


def customer_of(store: Store, identity_id: int) -> Customer:
    return store.transaction(lambda s: s.get(Customer, s.get(ChannelIdentity, identity_id).customer_id))


def open_case(store: Store, conversation_id: int) -> int:
    def add(session) -> int:  # type: ignore[no-untyped-def]
        conversation = session.get(Conversation, conversation_id)
        case = Case(conversation_id=conversation.id, customer_id=conversation.customer_id, trigger="complaint")
        session.add(case)
        session.flush()
        return case.id
    return store.transaction(add)


@pytest.fixture
def two_channels(store: Store) -> dict:
    """Ann on Telegram and (not yet known to be the same person) on the web chat."""
    telegram = say(store, "telegram", "4242", "t1", "my internet is down", "Ann")
    answer(store, telegram, "Sorry! Let me check.", "report_outage", 0.91)
    webchat = say(store, "webchat", "session-abc", "w1", "when will it be fixed?", "Visitor")
    answer(store, webchat, "We expect it tonight.", "ask_fix_time", 0.74)
    case_id = open_case(store, webchat)
    return {"telegram": telegram, "webchat": webchat, "case": case_id,
            "telegram_identity": identity_of(store, telegram), "webchat_identity": identity_of(store, webchat)}


def test_two_channels_linked_to_one_crm_customer_share_one_history(store: Store, two_channels: dict) -> None:
    t_identity, w_identity = two_channels["telegram_identity"], two_channels["webchat_identity"]
    ann, visitor = customer_of(store, t_identity), customer_of(store, w_identity)
    assert ann.id != visitor.id

    first = store.transaction(link_identity, t_identity, "C-100", None)
    assert (first.action, first.customer_id, first.crm_ref) == ("linked", ann.id, "C-100")
    assert customer_of(store, t_identity).crm_ref == "C-100"

    second = store.transaction(link_identity, w_identity, " C-100 ")
    assert second.action == "moved"
    assert (second.customer_id, second.previous_customer_id, second.merged_customer_id) == (ann.id, visitor.id, visitor.id)
    assert (second.moved_conversations, second.moved_cases) == (1, 1)

    def state(session) -> dict:  # type: ignore[no-untyped-def]
        return {
            "identities": sorted(session.execute(select(ChannelIdentity.customer_id)).scalars()),
            "conversations": sorted(session.execute(select(Conversation.customer_id)).scalars()),
            "case": session.get(Case, two_channels["case"]).customer_id,
            "customers": {c.id: (c.crm_ref, list(c.flags)) for c in session.execute(select(Customer)).scalars()},
        }

    after = store.transaction(state)
    assert after["identities"] == [ann.id, ann.id] and after["conversations"] == [ann.id, ann.id]
    assert after["case"] == ann.id
    # the emptied customer is kept (no rows deleted) and marked as merged
    assert after["customers"] == {ann.id: ("C-100", []), visitor.id: (None, [f"merged_into:{ann.id}"])}
    assert is_merged(customer_of(store, t_identity)) is False

    history = store.transaction(customer_history, ann.id)
    assert [(c["id"], c["channel"]) for c in history] == [
        (two_channels["telegram"], "telegram"), (two_channels["webchat"], "webchat")]
    assert [m["text"] for m in history[0]["messages"]] == ["my internet is down", "Sorry! Let me check."]
    customer_message, bot_message = history[1]["messages"]
    assert (customer_message["direction"], customer_message["sender"], customer_message["intent"],
            customer_message["confidence"]) == ("in", "customer", "ask_fix_time", 0.74)
    assert (bot_message["direction"], bot_message["sender"], bot_message["intent"]) == ("out", "bot", None)
    assert customer_message["created_at"] < bot_message["created_at"]
    assert history[0]["created_at"] <= history[1]["created_at"]
    assert store.transaction(customer_history, visitor.id) == []
    newest = store.transaction(customer_history, ann.id, 1)
    assert [c["channel"] for c in newest] == ["webchat"]

    audit = store.transaction(lambda s: [(a.action, a.target_id, a.details["action"]) for a in
                                         s.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars()])
    assert audit == [("identity.link", t_identity, "linked"), ("identity.link", w_identity, "moved")]


def test_linking_is_idempotent(store: Store, two_channels: dict) -> None:
    t_identity, w_identity = two_channels["telegram_identity"], two_channels["webchat_identity"]
    store.transaction(link_identity, t_identity, "C-100")
    store.transaction(link_identity, w_identity, "C-100")
    snapshot = store.transaction(lambda s: sorted(
        (c.id, c.crm_ref, tuple(c.flags)) for c in s.execute(select(Customer)).scalars()))
    audits = store.transaction(lambda s: len(s.execute(select(AuditEntry)).scalars().all()))
    for identity in (t_identity, w_identity, t_identity):
        again = store.transaction(link_identity, identity, "C-100")
        assert again.action == "unchanged" and not again.changed
    assert store.transaction(lambda s: sorted(
        (c.id, c.crm_ref, tuple(c.flags)) for c in s.execute(select(Customer)).scalars())) == snapshot
    assert store.transaction(lambda s: len(s.execute(select(AuditEntry)).scalars().all())) == audits


def test_split_when_one_identity_of_a_linked_customer_belongs_to_another_number(
        store: Store, two_channels: dict) -> None:
    t_identity, w_identity = two_channels["telegram_identity"], two_channels["webchat_identity"]
    store.transaction(link_identity, t_identity, "C-100")
    store.transaction(link_identity, w_identity, "C-100")  # now one customer, two identities
    ann = customer_of(store, t_identity)

    # The agent finds the web chat visitor was someone else after all.
    split = store.transaction(link_identity, w_identity, "C-200", None)
    assert split.action == "split" and split.previous_customer_id == ann.id and split.customer_id != ann.id
    assert (split.moved_conversations, split.moved_cases) == (1, 1)
    other = customer_of(store, w_identity)
    assert (other.id, other.crm_ref, other.flags) == (split.customer_id, "C-200", [])
    assert customer_of(store, t_identity).crm_ref == "C-100"
    assert [c["channel"] for c in store.transaction(customer_history, ann.id)] == ["telegram"]
    assert [c["channel"] for c in store.transaction(customer_history, other.id)] == ["webchat"]
    assert store.transaction(lambda s: s.get(Case, two_channels["case"]).customer_id) == other.id


def test_relinking_a_sole_identity_changes_the_number(store: Store, two_channels: dict) -> None:
    t_identity = two_channels["telegram_identity"]
    store.transaction(link_identity, t_identity, "C-100")
    result = store.transaction(link_identity, t_identity, "C-101")
    assert result.action == "linked" and result.customer_id == result.previous_customer_id
    assert customer_of(store, t_identity).crm_ref == "C-101"
    details = store.transaction(lambda s: s.execute(select(AuditEntry).order_by(AuditEntry.id.desc())).scalars().first().details)
    assert details["previous_crm_ref"] == "C-100" and details["crm_ref"] == "C-101"


def test_moving_into_a_customer_keeps_a_customer_that_still_has_identities(store: Store, two_channels: dict) -> None:
    """The old customer is only marked merged when no identity is left."""
    t_identity, w_identity = two_channels["telegram_identity"], two_channels["webchat_identity"]
    ann = customer_of(store, t_identity)
    # a second Telegram chat of the same webcare customer (e.g. found by an earlier link)
    store.transaction(lambda s: s.add(ChannelIdentity(customer_id=ann.id, channel="telegram", external_id="999")))
    store.transaction(link_identity, w_identity, "C-300")
    moved = store.transaction(link_identity, t_identity, "C-300")
    assert moved.action == "moved" and moved.merged_customer_id is None
    assert customer_of(store, t_identity).crm_ref == "C-300"
    left = store.transaction(lambda s: s.get(Customer, ann.id))
    assert left.flags == [] and left.crm_ref is None


def test_errors(store: Store, two_channels: dict) -> None:
    with pytest.raises(NotFound):
        store.transaction(link_identity, 9999, "C-100")
    for bad in ("", "   ", "x" * 65):
        with pytest.raises(InvalidInput):
            store.transaction(link_identity, two_channels["telegram_identity"], bad)


def test_history_reads_without_lazy_loads(store: Store, two_channels: dict) -> None:
    """Every value is a plain type; nothing was left to load lazily after the session closed."""
    customer_id = customer_of(store, two_channels["telegram_identity"]).id
    history = store.transaction(customer_history, customer_id)
    [conversation] = history
    assert set(conversation) == {"id", "channel", "identity_id", "mode", "visibility", "thread_id", "linked_id",
                                 "created_at", "closed_at", "messages"}
    assert conversation["visibility"] == "private" and conversation["thread_id"] is None
    assert set(conversation["messages"][0]) == {"id", "direction", "sender", "text", "created_at", "intent",
                                                "confidence", "status", "kind"}
    assert dt.datetime.fromisoformat(conversation["created_at"]) <= utcnow()
