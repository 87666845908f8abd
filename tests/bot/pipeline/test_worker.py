"""The worker's units of work on a real SQLite store, with hand-built Rasa replies (no Rasa)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from sqlalchemy import select, update

from bot.cases.escalation import CaseSettings, default_settings, open_case
from bot.config import DEFAULTS
from bot.opening_hours import WEEKDAYS, OpeningHours
from bot.customer_texts import customer_text
from bot.pipeline.drafting_policy import DraftingPolicy
from bot.pipeline.intake import MAX_TEXT_CHARS, store_inbound
from bot.pipeline.outbox import enqueue
from bot.pipeline.rasa_client import RasaReply
from bot.store.database import Store
from tests.bot.locking_support import claim_beside_a_lock
from bot.store.models import (
    Case,
    TrackerEvent,
    Conversation,
    Customer,
    Draft,
    DraftStatus,
    Message,
    Mode,
    OutboxItem,
    utcnow,
)
from bot.pipeline.leases import LEASE_SECONDS, claim_conversations, release, renew_leases
from bot.pipeline.worker import Job, apply_reply, fail_to_agent, next_job, record_failure, rasa_text, route_attachment, route_to_agent
from connectors.base import InboundMessage

OWNER = "worker-a"
# Always closed, so the handover notice does not depend on the time the tests run.
CLOSED = CaseSettings(default_settings().taxonomy,
                      OpeningHours.from_config({"timezone": "UTC", **{d: "closed" for d in WEEKDAYS}}))
POLICY = DraftingPolicy.from_config(DEFAULTS["drafting"])
BUTTONS = [{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}]
ALTERNATIVES = [
    {"intent": "tariffs", "confidence": 0.4, "text": "Our tariffs start at 10 euros."},
    {"intent": "invoice", "confidence": 0.3, "text": "Your invoice is in the app."},
    {"intent": "contract_end", "confidence": 0.2, "text": "Your contract ends in May."},
    {"intent": "greet", "confidence": 0.1, "text": "Hi!"},
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_url(f"sqlite:///{tmp_path}/t.db")
    yield store
    store.close()


def receive(store: Store, message_id: str, sender: str = "42", text: str = "how much is it?", **kwargs):
    inbound = InboundMessage(channel="hook", channel_message_id=message_id, sender_id=sender, text=text, **kwargs)
    return store.transaction(store_inbound, inbound)


def reply(messages: Optional[List[Dict[str, Any]]] = None, intent: str = "tariffs", confidence: float = 0.95,
          language: Optional[str] = "en", alternatives: Optional[List[Dict[str, Any]]] = None) -> RasaReply:
    parse: Dict[str, Any] = {
        "text": "how much is it?",
        "intent": {"name": intent, "confidence": confidence},
        "intent_ranking": [{"name": intent, "confidence": confidence}],
        "entities": [],
    }
    if language:
        parse["language"] = {"name": language}
    if messages is None:
        messages = [{"text": "Our tariffs start at 10 euros a month."},
                    {"text": "Did that help?", "buttons": BUTTONS}]
    return RasaReply(messages, parse, ALTERNATIVES if alternatives is None else alternatives)


def job_for(store: Store, conversation_id: int, owner: str = OWNER) -> Job:
    store.transaction(claim_conversations, owner, 10)
    assert get(store, Conversation, conversation_id).lease_owner == owner
    job = store.transaction(next_job, conversation_id, owner)
    assert job is not None
    return job


def apply(store: Store, job: Job, rasa: RasaReply, owner: str = OWNER) -> Tuple[bool, Optional[Job]]:
    """apply_reply in one transaction: (anything queued, the conversation's next job or None)."""
    applied = store.transaction(apply_reply, job, rasa, POLICY, owner, CLOSED)
    return applied.queued, applied.next_job


def get(store: Store, model, key):
    return store.transaction(lambda s: s.get(model, key))


def all_of(store: Store, model) -> list:
    return store.transaction(lambda s: s.execute(select(model).order_by(model.id)).scalars().all())


def set_conversation(store: Store, conversation_id: int, **values) -> None:
    store.transaction(lambda s: s.execute(
        update(Conversation).where(Conversation.id == conversation_id).values(**values)))


# ---------------------------------------------------------------- claiming


def test_claim_only_conversations_with_received_messages_oldest_first(store: Store) -> None:
    x1 = receive(store, "x1", sender="x")          # message 1, conversation X
    y1 = receive(store, "y1", sender="y")          # message 2, conversation Y
    x2 = receive(store, "x2", sender="x")          # message 3, conversation X
    z1 = receive(store, "z1", sender="z")          # conversation Z: nothing left to do
    quiet = z1.conversation_id
    store.transaction(lambda s: s.execute(update(Message).where(
        Message.id.in_([x1.message_id, z1.message_id])).values(status="processed")))
    # an outbound-only conversation state must not count either
    store.transaction(lambda s: enqueue(s, key="out", channel="hook", recipient="z", payload={"text": "hi"},
                                        source="agent", conversation_id=quiet))

    assert store.transaction(claim_conversations, OWNER, 1) == [y1.conversation_id]
    assert store.transaction(claim_conversations, OWNER, 10) == [x2.conversation_id]
    assert store.transaction(claim_conversations, OWNER, 10) == []  # both leased (even by us)
    assert store.transaction(claim_conversations, "worker-b", 10) == []
    leased = get(store, Conversation, y1.conversation_id)
    assert leased.lease_owner == OWNER
    assert leased.lease_until > utcnow() + dt.timedelta(seconds=LEASE_SECONDS - 5)
    assert get(store, Conversation, quiet).lease_owner is None


def test_claim_order_is_by_oldest_waiting_message_not_conversation_id(store: Store) -> None:
    a = receive(store, "a1", sender="a")
    b = receive(store, "b1", sender="b")
    store.transaction(lambda s: s.execute(update(Message).where(Message.id == a.message_id).values(status="processed")))
    a2 = receive(store, "a2", sender="a")
    assert a.conversation_id == a2.conversation_id < b.conversation_id
    assert store.transaction(claim_conversations, OWNER, 10) == [b.conversation_id, a.conversation_id]


def test_expired_lease_is_claimed_again(store: Store) -> None:
    first = receive(store, "m1")
    assert store.transaction(claim_conversations, "worker-b", 10) == [first.conversation_id]
    assert store.transaction(claim_conversations, OWNER, 10) == []
    set_conversation(store, first.conversation_id, lease_until=utcnow() - dt.timedelta(seconds=1))
    assert store.transaction(claim_conversations, OWNER, 10) == [first.conversation_id]
    assert get(store, Conversation, first.conversation_id).lease_owner == OWNER
    # the crashed worker has lost it
    assert store.transaction(next_job, first.conversation_id, "worker-b") is None


def test_heartbeat_renews_only_our_own_leases(store: Store) -> None:
    ours = receive(store, "m1", sender="a")
    theirs = receive(store, "m2", sender="b")
    assert store.transaction(claim_conversations, OWNER, 1) == [ours.conversation_id]
    assert store.transaction(claim_conversations, "worker-b", 1) == [theirs.conversation_id]
    soon = utcnow() + dt.timedelta(seconds=2)
    for conversation_id in (ours.conversation_id, theirs.conversation_id):
        set_conversation(store, conversation_id, lease_until=soon)
    assert store.transaction(renew_leases, OWNER, [ours.conversation_id, theirs.conversation_id]) == 1
    assert get(store, Conversation, ours.conversation_id).lease_until > utcnow() + dt.timedelta(seconds=LEASE_SECONDS - 5)
    assert get(store, Conversation, theirs.conversation_id).lease_until == soon


def test_claims_skip_conversations_locked_by_another_replica_on_postgresql(pg_url: str) -> None:
    """SELECT … FOR UPDATE SKIP LOCKED: a claim does not wait for a row another replica is claiming."""
    store = Store.from_url(pg_url)
    try:
        locked = receive(store, "sk1", sender="sk-a")
        free = receive(store, "sk2", sender="sk-b")
        with store.engine.connect() as other:
            other_tx = other.begin()
            other.execute(select(Conversation.id).where(Conversation.id == locked.conversation_id).with_for_update())
            # with the row locked elsewhere, the claim returns at once with the other conversation
            claimed = claim_beside_a_lock(store, other_tx, claim_conversations, OWNER, 10)
        assert claimed == [free.conversation_id]
        assert store.transaction(claim_conversations, OWNER, 10) == [locked.conversation_id]
    finally:
        store.close()


def test_release_and_release_with_delay(store: Store) -> None:
    first = receive(store, "m1")
    store.transaction(claim_conversations, OWNER, 10)
    store.transaction(release, first.conversation_id, "someone-else", 0)  # not theirs: no effect
    assert get(store, Conversation, first.conversation_id).lease_owner == OWNER
    store.transaction(release, first.conversation_id, OWNER, 0)
    released = get(store, Conversation, first.conversation_id)
    assert released.lease_owner is None and released.lease_until is None
    assert store.transaction(claim_conversations, OWNER, 10) == [first.conversation_id]
    store.transaction(release, first.conversation_id, OWNER, 30)
    assert get(store, Conversation, first.conversation_id).lease_until > utcnow() + dt.timedelta(seconds=20)
    assert store.transaction(claim_conversations, OWNER, 10) == []  # backing off


# ---------------------------------------------------------------- next_job


def test_next_job_is_the_oldest_received_message(store: Store) -> None:
    first = receive(store, "m1", text="first", language_hint="en-US", metadata={"a": 1})
    receive(store, "m2", text="second")
    store.transaction(claim_conversations, OWNER, 10)
    set_conversation(store, first.conversation_id, lease_until=utcnow() + dt.timedelta(seconds=5))
    job = store.transaction(next_job, first.conversation_id, OWNER)
    assert job == Job(
        message_id=first.message_id, conversation_id=first.conversation_id, text="first", kind="text",
        truncated=False, attempts=0, channel="hook", recipient="42", rasa_sender_id="hook:42",
        mode=Mode.bot, language="en", language_hint="en",
    )
    # the lease was extended
    assert get(store, Conversation, first.conversation_id).lease_until > utcnow() + dt.timedelta(seconds=LEASE_SECONDS - 5)
    assert store.transaction(next_job, first.conversation_id, "worker-b") is None
    assert store.transaction(next_job, 999, OWNER) is None


def test_next_job_moves_on_and_ends(store: Store) -> None:
    first = receive(store, "m1", text="first")
    second = receive(store, "m2", text="second")
    job = job_for(store, first.conversation_id)
    queued, following = apply(store, job, reply())
    assert queued is True
    # the next message comes back in the same transaction, and the lease is kept (and extended)
    assert following == store.transaction(next_job, first.conversation_id, OWNER)
    assert following.message_id == second.message_id and following.text == "second"
    assert get(store, Conversation, first.conversation_id).lease_owner == OWNER
    store.transaction(route_to_agent, following)
    assert store.transaction(next_job, first.conversation_id, OWNER) is None


def test_apply_reply_releases_the_lease_when_nothing_is_left(store: Store) -> None:
    first = receive(store, "m1")
    assert apply(store, job_for(store, first.conversation_id), reply()) == (True, None)
    conversation = get(store, Conversation, first.conversation_id)
    assert conversation.lease_owner is None and conversation.lease_until is None
    # a new message is claimable at once
    receive(store, "m2")
    assert store.transaction(claim_conversations, "worker-b", 10) == [first.conversation_id]


def test_record_failure_counts_attempts(store: Store) -> None:
    first = receive(store, "m1")
    store.transaction(record_failure, first.message_id, "Rasa unreachable")
    store.transaction(record_failure, first.message_id, "x" * 5000)
    message = get(store, Message, first.message_id)
    assert message.attempts == 2 and message.status == "received"
    assert len(message.last_error) == 2000
    assert job_for(store, first.conversation_id).attempts == 2


# ---------------------------------------------------------------- apply_reply


def test_confident_reply_is_queued(store: Store) -> None:
    first = receive(store, "m1")
    job = job_for(store, first.conversation_id)
    rasa = reply()
    assert apply(store, job, rasa) == (True, None)
    items = all_of(store, OutboxItem)
    assert [i.idempotency_key for i in items] == [f"reply:{first.message_id}:0", f"reply:{first.message_id}:1"]
    assert [i.payload for i in items] == [
        {"text": "Our tariffs start at 10 euros a month."},
        {"text": "Did that help?", "buttons": BUTTONS},
    ]
    assert {(i.channel, i.recipient, i.source, i.conversation_id) for i in items} == {
        ("hook", "42", "bot", first.conversation_id)}
    message = get(store, Message, first.message_id)
    assert message.status == "processed" and message.processed_at is not None
    assert message.nlu == rasa.parse
    assert get(store, Conversation, first.conversation_id).language == "en"
    assert all_of(store, Draft) == []
    outbound = [m for m in all_of(store, Message) if m.direction.value == "out"]
    assert [m.text for m in outbound] == ["Our tariffs start at 10 euros a month.", "Did that help?"]
    assert all(m.status == "queued" and m.sender == "bot" for m in outbound)


def test_low_confidence_becomes_a_draft_and_supersedes_the_older_one(store: Store) -> None:
    first = receive(store, "m1")
    job = job_for(store, first.conversation_id)
    assert apply(store, job, reply(confidence=0.4)) == (False, None)
    second = receive(store, "m2", text="hello??")
    job2 = job_for(store, first.conversation_id)
    assert job2.message_id == second.message_id
    assert apply(store, job2, reply(confidence=0.5)) == (False, None)

    assert all_of(store, OutboxItem) == []
    older, newer = all_of(store, Draft)
    assert older.inbound_message_id == first.message_id and older.status == DraftStatus.superseded
    assert newer.inbound_message_id == second.message_id and newer.status == DraftStatus.pending
    assert newer.intent == "tariffs" and newer.confidence == 0.5
    assert newer.messages == [{"text": "Our tariffs start at 10 euros a month."},
                              {"text": "Did that help?", "buttons": BUTTONS}]
    assert newer.alternatives == ALTERNATIVES[:3]
    assert "0.50" in newer.reason and "0.80" in newer.reason
    assert get(store, Message, second.message_id).status == "processed"


def test_drafts_of_other_conversations_are_left_alone(store: Store) -> None:
    a = receive(store, "a1", sender="a")
    b = receive(store, "b1", sender="b")
    apply(store, job_for(store, a.conversation_id), reply(confidence=0.1))
    apply(store, job_for(store, b.conversation_id), reply(confidence=0.1))
    assert [d.status for d in all_of(store, Draft)] == [DraftStatus.pending, DraftStatus.pending]


def test_always_reviewed_intent_and_flagged_customer_are_drafted(store: Store) -> None:
    a = receive(store, "a1", sender="a")
    apply(store, job_for(store, a.conversation_id), reply(intent="complaint", confidence=0.99))
    b = receive(store, "b1", sender="b")
    customer_id = get(store, Conversation, b.conversation_id).customer_id
    store.transaction(lambda s: s.execute(update(Customer).where(Customer.id == customer_id).values(flags=["vip"])))
    apply(store, job_for(store, b.conversation_id), reply(confidence=0.99))
    assert all_of(store, OutboxItem) == []
    reasons = [d.reason for d in all_of(store, Draft)]
    assert "'complaint' is always reviewed" in reasons[0]
    assert "vip" in reasons[1]


def test_handover_instruction_opens_a_case_and_tells_the_wait(store: Store) -> None:
    first = receive(store, "m1", language_hint="en")
    job = job_for(store, first.conversation_id)
    custom = {"custom": {"webcare": {"handover": {"reason": "complaint", "details": {"words": ["awful"]}}}}}
    rasa = reply([{"text": "I'll pass you on to a colleague."}, custom], intent="ask_human", confidence=0.97)
    applied = store.transaction(apply_reply, job, rasa, POLICY, OWNER, CLOSED)
    assert applied.queued is True and applied.next_job is None and applied.case_id is not None
    conversation = get(store, Conversation, first.conversation_id)
    assert conversation.mode == Mode.human
    case = get(store, Case, applied.case_id)
    assert case.trigger == "complaint" and case.trigger_details["words"] == ["awful"]
    assert case.trigger_details["intent"] == "ask_human"
    # the customer gets the service's notice (with when we open), not the bot's text
    [sent] = all_of(store, OutboxItem)
    assert sent.payload == {"text": customer_text("handover_closed_unknown", "en")}
    assert case.snapshot["bot_suggestion"] == [{"text": "I'll pass you on to a colleague."}]
    assert all("custom" not in m.payload for m in all_of(store, Message))
    # the tracker gets a pause
    [pause] = all_of(store, TrackerEvent)
    assert pause.events == [{"event": "pause"}] and pause.rasa_sender_id == conversation.rasa_sender_id


def test_handover_in_a_drafted_reply_still_switches(store: Store) -> None:
    first = receive(store, "m1")
    custom = {"text": None, "custom": {"webcare": {"handover": {"reason": "complaint"}}}}
    rasa = reply([custom], intent="complaint", confidence=0.99)
    apply(store, job_for(store, first.conversation_id), rasa)
    assert get(store, Conversation, first.conversation_id).mode == Mode.human
    assert all_of(store, Draft) == []  # always-review intent, but a handover is not a draft
    assert [i.idempotency_key for i in all_of(store, OutboxItem)] == ["case:1:handover"]


def test_a_human_held_conversation_gets_no_bot_reply(store: Store) -> None:
    first = receive(store, "m1")
    store.transaction(open_case, first.conversation_id, "complaint", CLOSED)
    job = job_for(store, first.conversation_id)
    assert job.mode == Mode.human
    applied = store.transaction(apply_reply, job, reply(), POLICY, OWNER, CLOSED)
    assert applied.queued is False and applied.case_id is None
    assert [o.idempotency_key for o in all_of(store, OutboxItem)] == ["case:1:handover"]
    assert all_of(store, Draft) == []
    message = get(store, Message, first.message_id)
    assert message.status == "processed" and message.nlu["intent"]["name"] == "tariffs"


def test_applying_the_same_reply_twice_queues_once(store: Store) -> None:
    first = receive(store, "m1")
    job = job_for(store, first.conversation_id)
    assert apply(store, job, reply())[0] is True
    assert apply(store, job, reply())[0] is False
    assert len(all_of(store, OutboxItem)) == 2
    low = receive(store, "m2")
    job2 = job_for(store, first.conversation_id)
    apply(store, job2, reply(confidence=0.2))
    apply(store, job2, reply(confidence=0.2))
    assert [d.inbound_message_id for d in all_of(store, Draft)] == [low.message_id]


def test_truncated_message_gets_the_too_long_notice(store: Store) -> None:
    first = receive(store, "m1", text="z" * (MAX_TEXT_CHARS + 500))
    job = job_for(store, first.conversation_id)
    assert job.truncated is True and len(job.text) == MAX_TEXT_CHARS
    assert apply(store, job, reply())[0] is True
    items = all_of(store, OutboxItem)
    assert [i.idempotency_key for i in items] == [
        f"notice:{first.message_id}:too_long", f"reply:{first.message_id}:0", f"reply:{first.message_id}:1"]
    assert items[0].payload == {"text": customer_text("message_too_long", "en")}


def test_truncated_message_with_a_drafted_reply_still_gets_the_notice(store: Store) -> None:
    first = receive(store, "m1", text="z" * (MAX_TEXT_CHARS + 1), language_hint="nl")
    job = job_for(store, first.conversation_id)
    assert apply(store, job, reply(confidence=0.1, language=None))[0] is True
    [notice] = all_of(store, OutboxItem)
    assert notice.payload == {"text": customer_text("message_too_long", "nl")}
    assert len(all_of(store, Draft)) == 1


def test_language_falls_back_to_the_message_hint(store: Store) -> None:
    first = receive(store, "m1", language_hint="de-AT")
    set_conversation(store, first.conversation_id, language=None)
    job = job_for(store, first.conversation_id)
    apply(store, job, reply(language=None))
    assert get(store, Conversation, first.conversation_id).language == "de"


def test_human_mode_reply_is_silent(store: Store) -> None:
    first = receive(store, "m1")
    store.transaction(open_case, first.conversation_id, "request_human", CLOSED)
    notices = len(all_of(store, OutboxItem))
    job = job_for(store, first.conversation_id)
    assert job.mode == Mode.human
    assert apply(store, job, reply()) == (False, None)
    assert len(all_of(store, OutboxItem)) == notices and all_of(store, Draft) == []
    assert get(store, Message, first.message_id).status == "processed"


def test_a_human_conversation_without_a_case_gets_one(store: Store) -> None:
    """Handed over before cases existed: the next message opens a case so an agent sees it."""
    first = receive(store, "m1")
    set_conversation(store, first.conversation_id, mode=Mode.human)
    applied = store.transaction(apply_reply, job_for(store, first.conversation_id), reply(), POLICY, OWNER, CLOSED)
    assert applied.case_id is not None and get(store, Case, applied.case_id).trigger == "handover"
    assert all_of(store, Draft) == []
    [notice] = all_of(store, OutboxItem)
    assert notice.idempotency_key == f"case:{applied.case_id}:handover"


def test_assist_mode_drafts_everything(store: Store) -> None:
    first = receive(store, "m1")
    set_conversation(store, first.conversation_id, mode=Mode.assist)
    apply(store, job_for(store, first.conversation_id), reply(confidence=1.0))
    assert all_of(store, OutboxItem) == []
    [draft] = all_of(store, Draft)
    assert "assist" in draft.reason


# ---------------------------------------------------------------- route_to_agent / fail_to_agent


def test_route_to_agent_marks_processed_without_a_reply(store: Store) -> None:
    first = receive(store, "m1", kind="attachment")
    set_conversation(store, first.conversation_id, mode=Mode.human)
    job = job_for(store, first.conversation_id)
    assert job.kind == "attachment"
    store.transaction(route_to_agent, job)
    message = get(store, Message, first.message_id)
    assert message.status == "processed" and message.processed_at is not None
    assert all_of(store, OutboxItem) == []
    assert get(store, Conversation, first.conversation_id).mode == Mode.human
    store.transaction(route_to_agent, job)  # again: nothing changes
    assert get(store, Message, first.message_id).processed_at == message.processed_at


def test_fail_to_agent_hands_over_and_tells_the_customer(store: Store) -> None:
    first = receive(store, "m1", language_hint="en")
    job = job_for(store, first.conversation_id)
    case_id = store.transaction(fail_to_agent, job, "Rasa refused the message: 400 bad", CLOSED)
    assert get(store, Case, case_id).trigger == "rasa_refused"
    message = get(store, Message, first.message_id)
    assert message.status == "failed" and message.last_error == "Rasa refused the message: 400 bad"
    assert message.processed_at is not None
    assert get(store, Conversation, first.conversation_id).mode == Mode.human
    [notice] = all_of(store, OutboxItem)
    assert notice.idempotency_key == f"case:{case_id}:handover"
    assert notice.payload == {"text": customer_text("handover_closed_unknown", "en")}
    assert notice.recipient == "42" and notice.conversation_id == first.conversation_id

    # already human: a second refusal does not repeat the notice
    second = receive(store, "m2")
    job2 = store.transaction(next_job, first.conversation_id, OWNER)
    assert job2.message_id == second.message_id
    assert store.transaction(fail_to_agent, job2, "again", CLOSED) is None  # the same case
    assert get(store, Message, second.message_id).status == "failed"
    assert len(all_of(store, OutboxItem)) == 1


def test_fail_to_agent_on_a_handled_message_does_nothing(store: Store) -> None:
    first = receive(store, "m1")
    job = job_for(store, first.conversation_id)
    apply(store, job, reply())
    store.transaction(fail_to_agent, job, "late")
    assert get(store, Message, first.message_id).status == "processed"
    assert get(store, Conversation, first.conversation_id).mode == Mode.bot
    assert len(all_of(store, OutboxItem)) == 2


def test_fail_to_agent_uses_dutch_by_default(store: Store) -> None:
    first = receive(store, "m1")
    job = job_for(store, first.conversation_id)
    store.transaction(fail_to_agent, job, "refused", CLOSED)
    [notice] = all_of(store, OutboxItem)
    assert notice.payload == {"text": customer_text("handover_closed_unknown", None)}
    assert notice.payload["text"].startswith("Een collega")


def test_an_attachment_is_acknowledged_and_put_before_an_agent(store: Store) -> None:
    accepted = receive(store, "photo-1", text="[photo]", kind="attachment", language_hint="en",
                       metadata={"attachment": "photo", "file_id": "F1"})
    job = job_for(store, accepted.conversation_id)
    assert job.kind == "attachment" and job.attachment == "photo"
    assert store.transaction(route_attachment, job) is True
    items = store.transaction(lambda s: s.execute(select(OutboxItem)).scalars().all())
    assert [i.idempotency_key for i in items] == [f"ack:{accepted.message_id}"]
    assert items[0].payload["text"] == customer_text("attachment_received", "en", kind="photo")
    [draft] = store.transaction(lambda s: s.execute(select(Draft)).scalars().all())
    assert draft.messages == [] and draft.status == DraftStatus.pending
    assert "photo" in draft.reason and "agent" in draft.reason
    assert store.transaction(lambda s: s.get(Message, accepted.message_id).status) == "processed"
    # Handling it again (e.g. after a lease expiry) changes nothing.
    assert store.transaction(route_attachment, job) is False
    assert store.transaction(lambda s: len(s.execute(select(OutboxItem)).scalars().all())) == 1


def test_an_attachment_in_a_human_held_conversation_is_only_logged(store: Store) -> None:
    accepted = receive(store, "voice-1", text="[voice]", kind="attachment", metadata={"attachment": "voice"})
    store.transaction(lambda s: s.execute(
        update(Conversation).where(Conversation.id == accepted.conversation_id).values(mode=Mode.human)))
    job = job_for(store, accepted.conversation_id)
    assert store.transaction(route_attachment, job) is False
    assert store.transaction(lambda s: s.execute(select(OutboxItem)).scalars().all()) == []
    assert store.transaction(lambda s: s.execute(select(Draft)).scalars().all()) == []
    assert store.transaction(lambda s: s.get(Message, accepted.message_id).status) == "processed"


def _job(**overrides: Any) -> Job:
    values = dict(message_id=1, conversation_id=1, text="hallo", kind="text", truncated=False, attempts=0,
                  channel="hook", recipient="42", rasa_sender_id="hook:42", mode=Mode.bot,
                  language=None, language_hint=None)
    values.update(overrides)
    return Job(**values)


@pytest.mark.parametrize("overrides, expected", [
    ({"text": "/complaint"}, "complaint"),              # a customer's text never becomes an intent payload
    ({"text": "//request_human please"}, "request_human please"),
    ({"text": "/affirm", "kind": "button"}, "/affirm"),  # a button press does
    ({"text": "/start", "command": "start"}, "/greet"),  # Telegram's /start is a greeting
    ({"text": "mn factuur"}, "mn factuur"),
])
def test_rasa_text(overrides: Dict[str, Any], expected: str) -> None:
    assert rasa_text(_job(**overrides)) == expected


def test_an_empty_bot_answer_goes_to_an_agent(store: Store) -> None:
    """Rasa said nothing (its tracker still paused a moment after a case closed): a draft for an agent."""
    first = receive(store, "m1")
    assert apply(store, job_for(store, first.conversation_id), reply(messages=[])) == (False, None)
    [draft] = all_of(store, Draft)
    assert draft.messages == [] and draft.status == DraftStatus.pending and "no answer" in draft.reason
    assert all_of(store, OutboxItem) == []


def test_bot_answers_in_a_human_held_conversation_pause_the_tracker_again(store: Store) -> None:
    first = receive(store, "m1")
    store.transaction(open_case, first.conversation_id, "complaint", CLOSED)
    apply(store, job_for(store, first.conversation_id), reply())  # Rasa answered: not paused
    assert [e.events for e in all_of(store, TrackerEvent)] == [[{"event": "pause"}], [{"event": "pause"}]]
    assert len(all_of(store, OutboxItem)) == 1  # only the handover notice



def test_enqueue_all_writes_what_enqueue_writes(store: Store) -> None:
    """The reply path's multi-row outbox insert: the same rows as one enqueue per item, in order,
    idempotent on the key."""
    from bot.pipeline.outbox import enqueue_all

    conversation_id = receive(store, "eq-1", sender="eq").conversation_id
    payloads = [{"text": "one"}, {"text": "two", "buttons": BUTTONS}]
    store.transaction(lambda s: [enqueue(s, key=f"a:{i}", channel="hook", recipient="eq", payload=p, source="bot",
                                         conversation_id=conversation_id) for i, p in enumerate(payloads)])
    queued = store.transaction(enqueue_all, [(f"b:{i}", p) for i, p in enumerate(payloads)], channel="hook",
                               recipient="eq", source="bot", conversation_id=conversation_id)
    assert queued == ["b:0", "b:1"]
    again = store.transaction(enqueue_all, [("b:1", {"text": "other"}), ("b:2", {"text": "three"})], channel="hook",
                              recipient="eq", source="bot", conversation_id=conversation_id)
    assert again == ["b:2"]  # b:1 was queued before: not again
    items = all_of(store, OutboxItem)
    assert [i.idempotency_key for i in items] == ["a:0", "a:1", "b:0", "b:1", "b:2"]
    fields = ("conversation_id", "channel", "recipient", "payload", "source", "status", "attempts", "lease_owner")
    for a, b in zip(items[:2], items[2:4]):
        assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]
        assert b.next_attempt_at is not None and b.created_at is not None
    outbound = {m.id: m for m in all_of(store, Message) if m.direction == "out"}
    for a, b in zip(items[:2], items[2:4]):
        ma, mb = outbound[a.message_id], outbound[b.message_id]
        assert (ma.conversation_id, ma.channel, ma.sender, ma.text, ma.payload, ma.status) == \
               (mb.conversation_id, mb.channel, mb.sender, mb.text, mb.payload, mb.status)
    assert len(outbound) == 5
