"""Cases on a real SQLite store: opening with a snapshot, waiting time, agent actions, human mode."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select

from bot.cases import escalation as cases
from bot.review import decisions as drafts
from bot.accounts import hash_password
from bot.cases.escalation import CaseSettings, default_settings, expected_wait, handover_notice, open_case
from bot.config import DEFAULTS
from bot.customer_texts import customer_text
from bot.pipeline.drafting_policy import DraftingPolicy
from bot.errors import InvalidInput, Conflict, NotFound
from bot.pipeline.intake import store_inbound
from bot.opening_hours import OpeningHours
from bot.pipeline.rasa_client import RasaReply
from bot.store.database import Store
from bot.store.models import (
    AuditEntry,
    Case,
    CaseStatus,
    Conversation,
    Draft,
    DraftStatus,
    Message,
    Mode,
    OutboxItem,
    Role,
    TrackerEvent,
    User,
)
from bot.pipeline.leases import claim_conversations
from bot.pipeline.worker import apply_reply, next_job
from connectors.base import InboundMessage

POLICY = DraftingPolicy.from_config(DEFAULTS["drafting"])
WEEKDAYS_OPEN = {"timezone": "UTC", "monday": "08:00-20:00", "tuesday": "08:00-20:00",
                 "wednesday": "08:00-20:00", "thursday": "08:00-20:00", "friday": "08:00-20:00",
                 "saturday": "closed", "sunday": "closed"}
SETTINGS = CaseSettings(default_settings().taxonomy, OpeningHours.from_config(WEEKDAYS_OPEN),
                        wait_window_minutes=60, default_wait_minutes=15)
MONDAY_NOON = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
SATURDAY = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_url(f"sqlite:///{tmp_path}/t.db")
    yield store
    store.close()


def add_user(store: Store, username: str, role: Role = Role.agent) -> User:
    def add(session: Any) -> User:
        user = User(username=username, display_name=username.title(), role=role,
                    password_hash=hash_password("correct horse battery"))
        session.add(user)
        session.flush()
        session.expunge(user)
        return user
    return store.transaction(add)


def receive(store: Store, message_id: str, sender: str = "42", text: str = "mijn rekening is te hoog",
            channel: str = "hook", **kwargs: Any) -> Any:
    inbound = InboundMessage(channel=channel, channel_message_id=message_id, sender_id=sender, text=text,
                             **kwargs)
    return store.transaction(store_inbound, inbound)


def answer(store: Store, conversation_id: int, intent: str = "bill_too_high", confidence: float = 0.95,
           messages: Any = None, entities: Any = None) -> Any:
    """Claim and answer the conversation's next message with a hand-built Rasa reply."""
    store.transaction(claim_conversations, "w", 10)
    job = store.transaction(next_job, conversation_id, "w")
    assert job is not None
    parse = {"text": job.text, "intent": {"name": intent, "confidence": confidence},
             "intent_ranking": [{"name": intent, "confidence": confidence}],
             "entities": entities or [], "language": {"name": "nl"}}
    reply = RasaReply(messages if messages is not None else [{"text": "Dat zoeken we uit."}], parse, [])
    return store.transaction(apply_reply, job, reply, POLICY, "w", SETTINGS)


def all_of(store: Store, model: Any) -> List[Any]:
    return store.transaction(lambda s: s.execute(select(model).order_by(model.id)).scalars().all())


def get(store: Store, model: Any, key: int) -> Any:
    return store.transaction(lambda s: s.get(model, key))


def handover(reason: str, **details: Any) -> Dict[str, Any]:
    return {"custom": {"webcare": {"handover": {"reason": reason, "details": details}}}}


# ------------------------------------------------------------------ waiting time


def test_waiting_time_defaults_without_first_responses(store: Store) -> None:
    estimate = store.transaction(expected_wait, SETTINGS, MONDAY_NOON)
    assert estimate.open_now and estimate.minutes == 15 and estimate.basis.startswith("default")


def test_waiting_time_is_the_median_first_response_of_the_last_hour(store: Store) -> None:
    first = receive(store, "a")

    def seed(session: Any) -> None:
        conversation = session.get(Conversation, first.conversation_id)
        for opened_minutes_ago, answered_after in ((50, 4), (40, 12), (30, 21), (200, 90)):
            opened = MONDAY_NOON - dt.timedelta(minutes=opened_minutes_ago)
            session.add(Case(conversation_id=conversation.id, customer_id=conversation.customer_id,
                             trigger="complaint", status=CaseStatus.closed, opened_at=opened,
                             first_response_at=opened + dt.timedelta(minutes=answered_after),
                             closed_at=MONDAY_NOON, snapshot={}))
    store.transaction(seed)
    estimate = store.transaction(expected_wait, SETTINGS, MONDAY_NOON)
    # the case answered 110 minutes ago is outside the window: median of 4, 12, 21 = 12 → 15
    assert estimate.minutes == 15 and "median of 3" in estimate.basis
    text = handover_notice(estimate, "en", MONDAY_NOON)
    assert "about 15 minutes" in text


def test_a_backlog_raises_the_estimate(store: Store) -> None:
    first = receive(store, "a")

    def seed(session: Any) -> None:
        conversation = session.get(Conversation, first.conversation_id)
        opened = MONDAY_NOON - dt.timedelta(minutes=30)
        session.add(Case(conversation_id=conversation.id, customer_id=conversation.customer_id,
                         trigger="complaint", status=CaseStatus.closed, opened_at=opened,
                         first_response_at=opened + dt.timedelta(minutes=2), snapshot={}))
        for other, minutes_ago in ((second, 41), (third, 20)):  # two waiting, nobody answered yet
            waiting = session.get(Conversation, other.conversation_id)
            session.add(Case(conversation_id=waiting.id, customer_id=waiting.customer_id,
                             trigger="complaint", status=CaseStatus.open, snapshot={},
                             opened_at=MONDAY_NOON - dt.timedelta(minutes=minutes_ago)))
    second, third = receive(store, "b", sender="43"), receive(store, "c", sender="44")
    store.transaction(seed)
    estimate = store.transaction(expected_wait, SETTINGS, MONDAY_NOON)
    assert estimate.minutes == 45 and "backlog" in estimate.basis


def test_out_of_hours_the_customer_hears_when_we_open_and_that_the_message_is_kept(store: Store) -> None:
    estimate = store.transaction(expected_wait, SETTINGS, SATURDAY)
    assert not estimate.open_now and estimate.opens_at is not None
    assert estimate.opens_at.weekday() == 0 and estimate.opens_at.hour == 8
    assert handover_notice(estimate, "nl", SATURDAY) == customer_text(
        "handover_closed", "nl", day="maandag", time="08:00")
    assert "kept" in handover_notice(estimate, "en", SATURDAY)


def test_on_a_holiday_or_after_an_early_closing_the_customer_hears_the_next_real_opening(store: Store) -> None:
    exceptions = {"2026-12-24": "08:00-16:00", "eerste_kerstdag": "closed"}
    settings = CaseSettings(SETTINGS.taxonomy, OpeningHours.from_config({**WEEKDAYS_OPEN, "exceptions": exceptions}))
    christmas_eve_17 = dt.datetime(2026, 12, 24, 17, 0, tzinfo=dt.timezone.utc)  # a Thursday
    christmas_noon = dt.datetime(2026, 12, 25, 12, 0, tzinfo=dt.timezone.utc)  # a Friday
    assert store.transaction(expected_wait, SETTINGS, christmas_eve_17).open_now  # without the exceptions
    for now in (christmas_eve_17, christmas_noon):
        estimate = store.transaction(expected_wait, settings, now)
        assert not estimate.open_now and estimate.minutes is None
        assert estimate.opens_at == dt.datetime(2026, 12, 28, 8, 0, tzinfo=dt.timezone.utc)  # Monday
        assert handover_notice(estimate, "nl", now) == customer_text(
            "handover_closed", "nl", day="maandag", time="08:00")
    assert store.transaction(expected_wait, settings, christmas_eve_17 - dt.timedelta(hours=2)).open_now


# ------------------------------------------------------------------------ opening


def test_each_trigger_opens_a_case_with_a_complete_snapshot(store: Store) -> None:
    # An earlier conversation of the same customer on another channel, linked by CRM number.
    web = receive(store, "w1", sender="web-7", text="hoe hoog is mijn termijnbedrag", channel="webchat")
    answer(store, web.conversation_id, intent="change_advance_payment", confidence=0.91)
    tg = receive(store, "t1", sender="tg-7", channel="telegram")

    def link(session: Any) -> None:
        from bot.customers.identity_linking import link_identity

        for conversation_id in (web.conversation_id, tg.conversation_id):
            conversation = session.get(Conversation, conversation_id)
            link_identity(session, conversation.identity_id, "12345678")
    store.transaction(link)
    answer(store, tg.conversation_id, intent="bill_too_high", confidence=0.97,
           entities=[{"entity": "amount", "value": "300"}])
    receive(store, "t2", sender="tg-7", text="dit is echt belachelijk slecht", channel="telegram")
    applied = answer(store, tg.conversation_id, intent="complaint", confidence=0.88,
                     messages=[{"text": "Vervelend!"}, handover("negative_sentiment", score=-0.8)])
    case = get(store, Case, applied.case_id)
    assert case.trigger == "negative_sentiment" and case.trigger_details["score"] == -0.8
    assert case.status == CaseStatus.open and case.crm_status == "pending"
    assert case.suggested_root_cause == "billing_amount"  # bill 0.97 outweighs complaint 0.88
    snap = case.snapshot
    assert [t["text"] for t in snap["transcript"] if t["direction"] == "in"] == [
        "mijn rekening is te hoog", "dit is echt belachelijk slecht"]
    turns = [t for t in snap["transcript"] if t["direction"] == "in"]
    assert [(t["intent"], t["confidence"]) for t in turns] == [("bill_too_high", 0.97), ("complaint", 0.88)]
    assert snap["entities"] == [{"entity": "amount", "value": "300"}]
    [earlier] = snap["earlier_conversations"]
    assert earlier["channel"] == "webchat" and earlier["messages"][0]["intent"] == "change_advance_payment"
    assert {i["channel"] for i in snap["customer"]["identities"]} == {"webchat", "telegram"}
    assert snap["customer"]["crm_ref"] == "12345678"
    assert snap["language"] == "nl" and snap["bot_suggestion"] == [{"text": "Vervelend!"}]
    assert snap["wait_estimate"]["open_now"] in (True, False)
    assert snap["cases"] == []
    # human mode, pause queued for the tracker, notice to the customer, audit entry
    assert get(store, Conversation, tg.conversation_id).mode == Mode.human
    assert [e.events for e in all_of(store, TrackerEvent)] == [[{"event": "pause"}]]
    notice = [o for o in all_of(store, OutboxItem) if o.idempotency_key == f"case:{case.id}:handover"]
    assert len(notice) == 1 and notice[0].recipient == "tg-7"
    assert [a.action for a in all_of(store, AuditEntry) if a.target_type == "case"] == ["case.open"]


def test_opening_twice_returns_the_open_case(store: Store) -> None:
    first = receive(store, "m1")
    one, created = store.transaction(open_case, first.conversation_id, "request_human", SETTINGS)
    two, again = store.transaction(open_case, first.conversation_id, "complaint", SETTINGS)
    assert created and not again and one.id == two.id
    assert len(all_of(store, TrackerEvent)) == 1 and len(all_of(store, OutboxItem)) == 1


def test_rejecting_a_draft_opens_a_case_held_by_the_agent(store: Store) -> None:
    agent = add_user(store, "anna")
    first = receive(store, "m1")
    answer(store, first.conversation_id, intent="cancel_contract", confidence=0.99)  # always reviewed
    [draft] = all_of(store, Draft)
    result = store.transaction(drafts.reject, draft.id, agent, "wrong answer", SETTINGS)
    case = get(store, Case, result["case_id"])
    assert case.trigger == "draft_rejected" and case.assigned_agent_id == agent.id
    assert case.status == CaseStatus.assigned and case.trigger_details["draft_id"] == draft.id
    conversation = get(store, Conversation, first.conversation_id)
    assert conversation.mode == Mode.human and conversation.assigned_agent_id == agent.id
    # the agent answers themself: no waiting-time notice, only the existing "handed over" text
    assert [o.idempotency_key for o in all_of(store, OutboxItem)] == [f"draft:{draft.id}:handover"]


# -------------------------------------------------------------------- human mode


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(
    st.sampled_from(["bill_too_high", "complaint", "greet", "nlu_fallback", "request_human", "tariffs"]),
    st.floats(min_value=0.0, max_value=1.0),
    st.sampled_from(["answer", "handover", "identify", "nothing", "buttons"]),
), min_size=1, max_size=6))
def test_a_human_held_conversation_never_gets_a_bot_reply(tmp_path_factory: Any, turns: List[Any]) -> None:
    store = Store.from_url(f"sqlite:///{tmp_path_factory.mktemp('prop')}/t.db")
    try:
        first = receive(store, "m0")
        case, _ = store.transaction(open_case, first.conversation_id, "request_human", SETTINGS)
        before = len(all_of(store, OutboxItem))  # the handover notice
        answer(store, first.conversation_id)
        for index, (intent, confidence, kind) in enumerate(turns, start=1):
            receive(store, f"m{index}", text=f"bericht {index}")
            messages = {
                "answer": [{"text": "Het antwoord."}],
                "handover": [{"text": "Ik verbind je door."}, handover("profanity")],
                "identify": [{"custom": {"webcare": {"identify": {"customer_number": "123456"}}}}],
                "nothing": [],
                "buttons": [{"text": "Geholpen?", "buttons": [{"title": "Ja", "payload": "/affirm"}]}],
            }[kind]
            applied = answer(store, first.conversation_id, intent=intent, confidence=confidence, messages=messages)
            assert applied.queued is False and applied.case_id is None and applied.identify is None
        assert len(all_of(store, OutboxItem)) == before
        assert [d for d in all_of(store, Draft) if d.status == DraftStatus.pending] == []
        assert len(all_of(store, Case)) == 1
        processed = [m for m in all_of(store, Message) if m.direction == "in"]
        assert all(m.status == "processed" and m.nlu for m in processed)
    finally:
        store.close()


# ------------------------------------------------------------------ agent actions


def open_one(store: Store) -> Case:
    first = receive(store, "m1")
    answer(store, first.conversation_id, messages=[handover("request_human")])
    [case] = all_of(store, Case)
    return case


def test_an_agent_reply_goes_out_and_into_the_tracker_once(store: Store) -> None:
    agent = add_user(store, "anna")
    case = open_one(store)
    result = store.transaction(cases.reply, case.id, agent, "  Ik kijk het nu voor je na.  ", "tok-12345678")
    again = store.transaction(cases.reply, case.id, agent, "Ik kijk het nu voor je na.", "tok-12345678")
    assert again["duplicate"] is True and again["outbox_id"] == result["outbox_id"]
    item = get(store, OutboxItem, result["outbox_id"])
    assert item.payload == {"text": "Ik kijk het nu voor je na."} and item.source == "agent"
    sent = get(store, Message, item.message_id)
    assert sent.sender == f"agent:{agent.id}" and sent.direction == "out"
    events = [e.events for e in all_of(store, TrackerEvent)]
    assert events[0] == [{"event": "pause"}]
    assert len(events) == 2 and events[1][0]["event"] == "bot"
    assert events[1][0]["text"] == "Ik kijk het nu voor je na."
    assert events[1][0]["metadata"]["webcare_agent"] == "anna"
    case = get(store, Case, case.id)
    assert case.first_response_at is not None and case.assigned_agent_id == agent.id
    assert case.status == CaseStatus.assigned
    assert [a.action for a in all_of(store, AuditEntry) if a.action.startswith("case.")] == [
        "case.open", "case.reply"]


def test_bad_agent_input_changes_nothing(store: Store) -> None:
    agent = add_user(store, "anna")
    case = open_one(store)
    count = len(all_of(store, OutboxItem))
    for text in ("", "   ", None, 42, "x" * 4001):
        with pytest.raises(InvalidInput):
            store.transaction(cases.reply, case.id, agent, text)
    with pytest.raises(InvalidInput):
        store.transaction(cases.reply, case.id, agent, "ok", "short")
    with pytest.raises(NotFound):
        store.transaction(cases.reply, 999, agent, "hello")
    with pytest.raises(InvalidInput):
        store.transaction(cases.assign, case.id, agent, 999)
    with pytest.raises(InvalidInput):
        store.transaction(cases.add_note, case.id, agent, " ")
    assert len(all_of(store, OutboxItem)) == count and len(all_of(store, TrackerEvent)) == 1


def test_notes_assign_and_transfer_are_audited(store: Store) -> None:
    anna, bert = add_user(store, "anna"), add_user(store, "bert")
    case = open_one(store)
    store.transaction(cases.add_note, case.id, anna, "Klant belde ook al gisteren.")
    store.transaction(cases.assign, case.id, anna, anna.id)
    store.transaction(cases.assign, case.id, anna, bert.id)
    detail = store.transaction(cases.case_detail, case.id)
    assert detail["assigned_to"] == "Bert" and detail["notes"][0]["text"] == "Klant belde ook al gisteren."
    assert get(store, Conversation, detail["conversation_id"]).assigned_agent_id == bert.id
    actions = [(a.action, a.details) for a in all_of(store, AuditEntry) if a.action.startswith("case.")]
    assert [a for a, _ in actions] == ["case.open", "case.note", "case.assign", "case.transfer"]
    assert actions[-1][1] == {"from": anna.id, "to": bert.id}
    assert all_of(store, OutboxItem)[-1].idempotency_key.endswith(":handover")  # notes are never sent


def test_closing_needs_a_known_root_cause_and_hands_back_to_the_bot(store: Store) -> None:
    anna = add_user(store, "anna")
    case = open_one(store)
    for root_cause in (None, "", "made_up"):
        with pytest.raises(InvalidInput):
            store.transaction(cases.close, case.id, anna, root_cause, "Uitgelegd.", SETTINGS)
    with pytest.raises(InvalidInput):
        store.transaction(cases.close, case.id, anna, "billing_amount", "", SETTINGS)
    assert get(store, Case, case.id).status == CaseStatus.open
    result = store.transaction(cases.close, case.id, anna, "billing_amount", "Uitgelegd en gecorrigeerd.", SETTINGS)
    assert result["status"] == "closed"
    closed = get(store, Case, case.id)
    assert closed.root_cause == "billing_amount" and closed.closed_by == anna.id
    conversation = get(store, Conversation, closed.conversation_id)
    assert conversation.mode == Mode.bot and conversation.assigned_agent_id is None
    assert all_of(store, TrackerEvent)[-1].events == [{"event": "resume"}]
    with pytest.raises(Conflict):
        store.transaction(cases.close, case.id, anna, "billing_amount", "again", SETTINGS)
    with pytest.raises(Conflict):
        store.transaction(cases.reply, case.id, anna, "too late")
    # the bot answers again, and a new escalation opens a new case
    receive(store, "m9", text="wanneer zijn jullie open")
    applied = answer(store, closed.conversation_id, intent="contact_hours", confidence=0.99)
    assert applied.queued is True
    receive(store, "m10", text="mens graag")
    applied = answer(store, closed.conversation_id, messages=[handover("request_human")])
    assert applied.case_id is not None and applied.case_id != case.id
    new = get(store, Case, applied.case_id)
    assert [c["id"] for c in new.snapshot["cases"]] == [case.id]


def test_case_queue_lists_open_cases_oldest_first_with_waiting_time(store: Store) -> None:
    one = open_one(store)
    second = receive(store, "x1", sender="99")
    answer(store, second.conversation_id, messages=[handover("complaint")])
    queue = store.transaction(cases.case_queue)
    assert [c["id"] for c in queue] == [one.id, one.id + 1]
    assert all(c["waiting_seconds"] >= 0 and not c["answered"] for c in queue)
