"""Draft decisions and the queue (bot/review/decisions.py), on a real SQLite store."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from bot.review import decisions as drafts
from bot.customer_texts import customer_text
from bot.errors import InvalidInput, Conflict, NotFound
from bot.store.models import (
    AuditEntry,
    ChannelIdentity,
    Conversation,
    Direction,
    Draft,
    DraftStatus,
    Message,
    Mode,
    OutboxItem,
    Role,
    utcnow,
)
from tests.bot.console_support import ALTERNATIVES, DRAFTED, make_store, seed_draft, seed_users


@pytest.fixture
def store(tmp_path):
    store = make_store(tmp_path)
    yield store
    store.close()


@pytest.fixture
def users(store):
    return store.transaction(seed_users)


def outbox_rows(store, draft_id=None):
    def read(session):
        query = select(OutboxItem).order_by(OutboxItem.id)
        if draft_id is not None:
            query = query.where(OutboxItem.idempotency_key.like(f"draft:{draft_id}:%"))
        return session.execute(query).scalars().all()

    return store.transaction(read)


def audit_rows(store, draft_id):
    return store.transaction(lambda s: s.execute(
        select(AuditEntry).where(AuditEntry.target_type == "draft", AuditEntry.target_id == draft_id)
    ).scalars().all())


def get_draft(store, draft_id):
    return store.transaction(lambda s: s.get(Draft, draft_id))


def test_approve_enqueues_every_drafted_message(store, users):
    agent = users[Role.agent]
    draft_id = store.transaction(seed_draft)
    result = store.transaction(drafts.approve, draft_id, agent)
    rows = outbox_rows(store)
    assert [r.idempotency_key for r in rows] == [f"draft:{draft_id}:0", f"draft:{draft_id}:1"]
    assert [r.payload for r in rows] == DRAFTED  # text and buttons, as drafted
    assert {r.source for r in rows} == {"draft"} and {r.channel for r in rows} == {"telegram"}
    logged = store.transaction(lambda s: s.get(Message, rows[0].message_id))
    assert logged.conversation_id == rows[0].conversation_id and logged.text == DRAFTED[0]["text"]
    draft = get_draft(store, draft_id)
    assert draft.status == DraftStatus.approved and draft.decided_by == agent.id and draft.decided_at
    assert draft.final_text == DRAFTED[0]["text"] + "\n\n" + DRAFTED[1]["text"]
    [entry] = audit_rows(store, draft_id)
    assert entry.action == "draft.approve" and entry.actor_id == agent.id
    assert result["draft"]["status"] == "approved" and len(result["outbox"]) == 2
    # The outbound messages are logged in the conversation, by the bot.
    outbound = store.transaction(lambda s: s.execute(
        select(Message).where(Message.direction == Direction.outbound, Message.status == "queued")).scalars().all())
    assert [m.sender for m in outbound] == ["bot", "bot"]


def test_outbox_recipient_is_the_channel_identity(store, users):
    draft_id = store.transaction(seed_draft)
    store.transaction(drafts.approve, draft_id, users[Role.agent])
    identity = store.transaction(lambda s: s.execute(select(ChannelIdentity)).scalar_one())
    assert {row.recipient for row in outbox_rows(store)} == {identity.external_id}


def test_edit_sends_one_message_with_the_text_and_labels_the_intent(store, users):
    agent = users[Role.agent]
    draft_id = store.transaction(seed_draft)
    store.transaction(drafts.edit, draft_id, agent, "  Ik kijk het voor je na!  ", "complaint")
    [row] = outbox_rows(store)
    assert row.idempotency_key == f"draft:{draft_id}:0"
    assert row.payload == {"text": "Ik kijk het voor je na!"}
    draft = get_draft(store, draft_id)
    assert draft.status == DraftStatus.edited and draft.corrected_intent == "complaint"
    assert draft.final_text == "Ik kijk het voor je na!"
    [entry] = audit_rows(store, draft_id)
    assert entry.action == "draft.edit"
    assert entry.details["before"].startswith(DRAFTED[0]["text"])
    assert entry.details["after"] == "Ik kijk het voor je na!"
    assert entry.details["intent_before"] == "bill_too_high" and entry.details["intent_after"] == "complaint"
    sender = store.transaction(lambda s: s.get(Message, row.message_id).sender)
    assert sender == f"agent:{agent.id}"


def test_edit_without_intent_leaves_it_unlabelled(store, users):
    draft_id = store.transaction(seed_draft)
    store.transaction(drafts.edit, draft_id, users[Role.admin], "Klopt, ik zoek het uit.", "")
    assert get_draft(store, draft_id).corrected_intent is None


@pytest.mark.parametrize("text, message", [("", "empty"), ("   \n ", "empty"), ("x" * 4097, "4096"), (None, "string")])
def test_edit_refuses_bad_text_and_changes_nothing(store, users, text, message):
    draft_id = store.transaction(seed_draft)
    with pytest.raises(InvalidInput, match=message):
        store.transaction(drafts.edit, draft_id, users[Role.agent], text)
    assert get_draft(store, draft_id).status == DraftStatus.pending
    assert outbox_rows(store) == []


def test_edit_accepts_exactly_4096_characters_and_refuses_a_bad_intent(store, users):
    draft_id = store.transaction(seed_draft)
    with pytest.raises(InvalidInput, match="intent"):
        store.transaction(drafts.edit, draft_id, users[Role.agent], "ok", "two words")
    store.transaction(drafts.edit, draft_id, users[Role.agent], "y" * 4096)
    assert outbox_rows(store)[0].payload["text"] == "y" * 4096


def test_pick_sends_the_alternative_and_records_its_intent(store, users):
    agent = users[Role.agent]
    draft_id = store.transaction(seed_draft)
    store.transaction(drafts.pick, draft_id, agent, 1)
    rows = outbox_rows(store)
    assert [r.idempotency_key for r in rows] == [f"draft:{draft_id}:0", f"draft:{draft_id}:1"]
    assert [r.payload for r in rows] == ALTERNATIVES[1]["messages"]
    draft = get_draft(store, draft_id)
    assert draft.status == DraftStatus.picked and draft.corrected_intent == "payment_arrangement"
    [entry] = audit_rows(store, draft_id)
    assert entry.action == "draft.pick" and entry.details["index"] == 1
    assert entry.details["intent_after"] == "payment_arrangement"


@pytest.mark.parametrize("index", [2, -1])  # a text, a bool, null: tests/bot/web/test_request_fields.py
def test_pick_refuses_a_bad_index(store, users, index):
    draft_id = store.transaction(seed_draft)
    with pytest.raises(InvalidInput):
        store.transaction(drafts.pick, draft_id, users[Role.agent], index)
    assert get_draft(store, draft_id).status == DraftStatus.pending
    assert outbox_rows(store) == []


def test_reject_hands_the_conversation_to_the_agent(store, users):
    agent = users[Role.agent]
    draft_id = store.transaction(seed_draft, language="en")
    store.transaction(drafts.reject, draft_id, agent, "customer is angry")
    [row] = outbox_rows(store)
    assert row.idempotency_key == f"draft:{draft_id}:handover"
    assert row.payload == {"text": customer_text("handed_to_agent", "en")}
    draft = get_draft(store, draft_id)
    assert draft.status == DraftStatus.rejected and draft.decided_by == agent.id and draft.final_text is None
    conversation = store.transaction(lambda s: s.get(Conversation, row.conversation_id))
    assert conversation.mode == Mode.human and conversation.assigned_agent_id == agent.id
    [entry] = audit_rows(store, draft_id)
    assert entry.action == "draft.reject" and entry.details["reason"] == "customer is angry"


def test_reject_speaks_dutch_when_the_language_is_unknown(store, users):
    draft_id = store.transaction(seed_draft, language=None)
    store.transaction(drafts.reject, draft_id, users[Role.agent])
    assert outbox_rows(store)[0].payload["text"] == customer_text("handed_to_agent", "nl")


@pytest.mark.parametrize("second", ["approve", "edit", "pick", "reject"])
def test_deciding_twice_is_a_conflict_naming_who_decided(store, users, second):
    draft_id = store.transaction(seed_draft)
    store.transaction(drafts.approve, draft_id, users[Role.agent])
    args = {"approve": (), "edit": ("other text",), "pick": (0,), "reject": ()}[second]
    with pytest.raises(Conflict, match="already approved by Anna Agent"):
        store.transaction(drafts.DECISIONS[second], draft_id, users[Role.admin], *args)
    assert len(outbox_rows(store)) == 2  # nothing more was queued
    assert get_draft(store, draft_id).decided_by == users[Role.agent].id


def test_superseded_draft_cannot_be_decided(store, users):
    draft_id = store.transaction(seed_draft)
    store.transaction(lambda s: setattr(s.get(Draft, draft_id), "status", DraftStatus.superseded))
    with pytest.raises(Conflict, match="superseded"):
        store.transaction(drafts.approve, draft_id, users[Role.agent])


@pytest.mark.parametrize("decision", ["approve", "edit", "pick", "reject"])
def test_unknown_draft_is_not_found(store, users, decision):
    args = {"approve": (), "edit": ("text",), "pick": (0,), "reject": ()}[decision]
    with pytest.raises(NotFound):
        store.transaction(drafts.DECISIONS[decision], 999, users[Role.agent], *args)
    with pytest.raises(NotFound):
        store.transaction(drafts.draft_detail, 999)


def test_a_draft_without_messages_cannot_be_approved(store, users):
    draft_id = store.transaction(seed_draft, messages=[])
    with pytest.raises(InvalidInput, match="no message"):
        store.transaction(drafts.approve, draft_id, users[Role.agent])
    assert get_draft(store, draft_id).status == DraftStatus.pending


def test_pending_queue_oldest_first_with_what_an_agent_needs(store, users):
    now = utcnow()
    newer = store.transaction(seed_draft, customer_text="nieuw", created_at=now - dt.timedelta(seconds=30))
    older = store.transaction(seed_draft, customer_text="oud", customer_name=None, channel="webchat",
                              created_at=now - dt.timedelta(seconds=400))
    decided = store.transaction(seed_draft, created_at=now - dt.timedelta(seconds=900))
    store.transaction(drafts.approve, decided, users[Role.agent])
    queue = store.transaction(drafts.pending_queue)
    assert [row["id"] for row in queue] == [older, newer]
    first = queue[0]
    assert 399 <= first["waiting_seconds"] < 460
    assert first["channel"] == "webchat" and first["customer"].startswith("webchat customer")
    assert len(first["customer"]) <= len("webchat customer ") + 12
    assert first["intent"] == "bill_too_high" and first["confidence"] == 0.62
    assert first["customer_text"] == "oud"
    assert first["snippet"] == DRAFTED[0]["text"]
    assert queue[1]["customer"] == "Jan Klant"
    assert store.transaction(drafts.pending_ids) == [older, newer]


def test_draft_detail_has_the_conversation_in_order_and_the_alternatives(store, users):
    draft_id = store.transaction(seed_draft)
    detail = store.transaction(drafts.draft_detail, draft_id)
    messages = detail["conversation"]["messages"]
    assert [(m["direction"], m["text"]) for m in messages] == [
        ("in", "Hallo"), ("out", "Hoi! Waarmee kan ik je helpen?"), ("in", "Mijn jaarafrekening is veel te hoog!")]
    assert messages[-1]["answers_this_draft"] is True
    assert [a["intent"] for a in detail["alternatives"]] == ["meter_reading", "payment_arrangement"]
    assert detail["alternatives"][1]["text"].endswith("Lukt dat niet? Dan regel ik het met je.")
    assert detail["buttons"] == ["Ja graag", "Nee"]
    assert detail["status"] == "pending" and detail["decided_by"] is None
    store.transaction(drafts.pick, draft_id, users[Role.agent], 0)
    detail = store.transaction(drafts.draft_detail, draft_id)
    assert detail["status"] == "picked" and detail["decided_by"]["display_name"] == "Anna Agent"
    assert detail["conversation"]["messages"][-1]["direction"] == "out"


def test_customers_without_a_name_show_a_short_channel_id() -> None:
    assert drafts.short_external_id("3f9a2c4be0d14c7a9e55a0f0b1c2d3e4") == "3f9a2c4b…"
    assert drafts.short_external_id("1234567890") == "1234567890"  # a Telegram chat id stays whole
    assert drafts.short_external_id("123456789012") == "123456789012"
