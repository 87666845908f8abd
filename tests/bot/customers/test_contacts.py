"""Contacts (episodes with a root cause), repeat flags, CSAT once per contact, service commands."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Iterator, List

import pytest
from sqlalchemy import select, update

from bot.cases import escalation as cases
from bot.accounts import create_user
from bot.cases.escalation import CaseSettings, default_settings, open_case
from bot.config import DEFAULTS
from bot.customers.contacts import close_idle, idle_conversations, record_comment
from bot.customers.identification import record_identification
from bot.review import decisions
from bot.pipeline.drafting_policy import DraftingPolicy
from bot.pipeline.intake import store_inbound
from bot.opening_hours import WEEKDAYS, OpeningHours
from bot.pipeline.rasa_client import RasaReply
from bot.pipeline.service_buttons import ServiceCommand, button_payload, parse_command
from bot.pipeline.service_commands import carry_out
from bot.store.database import Store
from bot.store.models import Contact, Conversation, Draft, Message, Mode, OptIn, OutboxItem, Purpose, utcnow
from bot.pipeline.leases import claim_conversations
from bot.pipeline.worker import apply_reply, next_job, route_attachment
from connectors.base import InboundMessage

POLICY = DraftingPolicy.from_config(DEFAULTS["drafting"])
SETTINGS = CaseSettings(default_settings().taxonomy,
                        OpeningHours.from_config({"timezone": "UTC", **{d: "closed" for d in WEEKDAYS}}))
TAXONOMY = SETTINGS.taxonomy
LATER = dt.timedelta(minutes=31)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_url(f"sqlite:///{tmp_path}/t.db")
    yield store
    store.close()


def receive(store: Store, message_id: str, text: str = "mijn rekening is te hoog", sender: str = "42",
            kind: str = "text") -> Any:
    return store.transaction(store_inbound, InboundMessage(
        channel="hook", channel_message_id=message_id, sender_id=sender, text=text, kind=kind))


def job_for(store: Store, conversation_id: int) -> Any:
    store.transaction(claim_conversations, "w", 10)
    job = store.transaction(next_job, conversation_id, "w")
    assert job is not None
    return job


def answer(store: Store, conversation_id: int, intent: str = "bill_too_high", confidence: float = 0.95) -> Any:
    job = job_for(store, conversation_id)
    parse = {"text": job.text, "intent": {"name": intent, "confidence": confidence},
             "intent_ranking": [{"name": intent, "confidence": confidence}], "entities": [],
             "language": {"name": "nl"}}
    return store.transaction(apply_reply, job, RasaReply([{"text": "Antwoord."}], parse, []), POLICY, "w", SETTINGS)


def all_of(store: Store, model: Any) -> List[Any]:
    return store.transaction(lambda s: s.execute(select(model).order_by(model.id)).scalars().all())


def sweep(store: Store, now: dt.datetime) -> List[int]:
    made = []
    for conversation_id in store.transaction(idle_conversations, 30, now):
        contact_id = store.transaction(close_idle, conversation_id, TAXONOMY, 30, True, now)
        if contact_id is not None:
            made.append(contact_id)
    return made


def command(store: Store, conversation_id: int, message_id: str, payload: str, sender: str = "42") -> bool:
    receive(store, message_id, text=payload, kind="button", sender=sender)
    job = job_for(store, conversation_id)
    parsed = parse_command(job.kind, job.text)
    assert parsed is not None
    queued = store.transaction(carry_out, job, parsed)
    store.transaction(lambda s: s.execute(update(Conversation).values(lease_owner=None, lease_until=None)))
    return queued


def test_service_commands_are_parsed_from_the_message_alone() -> None:
    assert parse_command("button", button_payload("csat", contact=3, score=5)) == ServiceCommand(
        "csat", {"contact": 3, "score": 5})
    assert parse_command("text", "  Stoppen! ") == ServiceCommand("stop")
    assert parse_command("text", "STOP") == ServiceCommand("stop")
    assert parse_command("text", "stop met dat gedoe, mijn rekening klopt niet") is None
    assert parse_command("button", "/affirm") is None
    assert parse_command("text", "/webcare_csat{not json").name == "invalid"
    assert parse_command("text", "/webcare_csat[1]").name == "invalid"


def test_an_idle_bot_episode_becomes_one_contact_and_asks_for_a_rating_once(store: Store) -> None:
    first = receive(store, "m1")
    answer(store, first.conversation_id)
    receive(store, "m2", text="dank je")
    answer(store, first.conversation_id, intent="thank")
    assert sweep(store, utcnow() + dt.timedelta(minutes=5)) == []  # not idle yet
    [contact_id] = sweep(store, utcnow() + LATER)
    contact = store.transaction(lambda s: s.get(Contact, contact_id))
    assert (contact.root_cause, contact.root_cause_source, contact.handled_by) == ("billing_amount", "bot", "bot")
    assert contact.customer_messages == 2 and contact.first_response_seconds >= 0
    assert contact.handling_seconds >= contact.first_response_seconds and contact.csat_asked_at is not None
    [csat] = [o for o in all_of(store, OutboxItem) if o.idempotency_key.startswith("csat:")]
    assert csat.idempotency_key == f"csat:{contact_id}"
    assert [b["payload"] for b in csat.payload["buttons"]] == [
        button_payload("csat", contact=contact_id, score=n) for n in range(1, 6)]
    assert sweep(store, utcnow() + LATER) == []  # nothing new: no second contact, no second question


def test_a_conversation_still_being_answered_or_held_by_a_human_is_left_alone(store: Store) -> None:
    first = receive(store, "m1")
    assert sweep(store, utcnow() + LATER) == []  # the message is still unanswered
    answer(store, first.conversation_id)
    store.transaction(open_case, first.conversation_id, "request_human", SETTINGS)
    assert sweep(store, utcnow() + LATER) == []  # a human holds it: the case close ends it


def test_closing_a_case_ends_the_contact_with_the_agents_root_cause(store: Store) -> None:
    agent = store.transaction(lambda s: create_user(s, "anna", "correct horse battery", "agent"))
    first = receive(store, "m1")
    answer(store, first.conversation_id)
    case, _ = store.transaction(open_case, first.conversation_id, "complaint", SETTINGS)
    store.transaction(cases.reply, case.id, agent, "Ik kijk ernaar.")
    store.transaction(cases.close, case.id, agent, "meter_reading", "Meterstand gecorrigeerd.", SETTINGS)
    [contact] = all_of(store, Contact)
    assert (contact.root_cause, contact.root_cause_source, contact.handled_by, contact.case_id) == (
        "meter_reading", "agent", "human", case.id)
    assert contact.csat_asked_at is not None


def test_repeat_contacts_within_seven_days_flag_the_first(store: Store) -> None:
    first = receive(store, "m1")
    answer(store, first.conversation_id)
    [one] = sweep(store, utcnow() + LATER)
    receive(store, "m2", text="mijn rekening is nog steeds te hoog")
    answer(store, first.conversation_id)
    [two] = sweep(store, utcnow() + 2 * LATER)
    contacts = {c.id: c for c in all_of(store, Contact)}
    assert contacts[one].repeated is True and contacts[two].repeat_of_id == one
    assert contacts[two].repeated is False

    # a different root cause, or more than 7 days later, is not a repeat
    def age(session: Any) -> None:
        session.execute(update(Contact).where(Contact.id.in_([one, two]))
                        .values(started_at=utcnow() - dt.timedelta(days=9), ended_at=utcnow() - dt.timedelta(days=9)))
    store.transaction(age)
    receive(store, "m3", text="weer die rekening")
    answer(store, first.conversation_id)
    [three] = sweep(store, utcnow() + 3 * LATER)
    assert store.transaction(lambda s: s.get(Contact, three)).repeat_of_id is None


def test_a_rating_is_stored_once_and_the_next_message_is_its_comment(store: Store) -> None:
    first = receive(store, "m1")
    answer(store, first.conversation_id)
    [contact_id] = sweep(store, utcnow() + LATER)
    assert command(store, first.conversation_id, "r1", button_payload("csat", contact=contact_id, score=4))
    assert not command(store, first.conversation_id, "r2", button_payload("csat", contact=contact_id, score=1))
    contact = store.transaction(lambda s: s.get(Contact, contact_id))
    assert contact.csat_score == 4 and contact.csat_answered_at is not None
    thanks = [o for o in all_of(store, OutboxItem) if o.idempotency_key == f"csat:{contact_id}:thanks"]
    assert len(thanks) == 1
    # the rating buttons never reached Rasa: their messages are processed by the service
    buttons = [m for m in all_of(store, Message) if m.channel_message_id in ("r1", "r2")]
    assert all(m.status == "processed" and m.nlu["service_command"] for m in buttons)

    receive(store, "c1", text="Snel geholpen, top!")
    job = job_for(store, first.conversation_id)
    assert job.csat_comment_open is True
    assert store.transaction(record_comment, job) is True
    assert store.transaction(lambda s: s.get(Contact, contact_id)).csat_comment == "Snel geholpen, top!"
    assert store.transaction(lambda s: s.get(Conversation, first.conversation_id)).csat_contact_id is None


def test_forged_or_malformed_ratings_change_nothing(store: Store) -> None:
    first = receive(store, "m1")
    answer(store, first.conversation_id)
    [contact_id] = sweep(store, utcnow() + LATER)
    other = receive(store, "x1", sender="77")
    for index, payload in enumerate([button_payload("csat", contact=contact_id, score=9),
                                     button_payload("csat", contact="1", score=3),
                                     button_payload("csat", contact=contact_id + 100, score=3),
                                     "/webcare_nonsense{}"]):
        assert not command(store, first.conversation_id, f"f{index}", payload)
    # another customer's conversation cannot rate this contact
    answer(store, other.conversation_id)
    assert not command(store, other.conversation_id, "f9", button_payload("csat", contact=contact_id, score=1),
                       sender="77")
    assert store.transaction(lambda s: s.get(Contact, contact_id)).csat_score is None


def test_after_stop_no_rating_is_asked(store: Store) -> None:
    first = receive(store, "m1")
    answer(store, first.conversation_id)
    receive(store, "m2", text="stoppen")
    job = job_for(store, first.conversation_id)
    assert store.transaction(carry_out, job, parse_command(job.kind, job.text))
    assert store.transaction(lambda s: s.execute(select(OptIn.proactive)).scalar_one()) is False
    [contact_id] = sweep(store, utcnow() + LATER)
    assert store.transaction(lambda s: s.get(Contact, contact_id)).csat_asked_at is None
    keys = [o.idempotency_key for o in all_of(store, OutboxItem)]
    assert not any(k.startswith("csat:") for k in keys) and any(k.startswith("stop:") for k in keys)


# ------------------------------------------------------- what waits on us, what is an answer


def backdate(store: Store, conversation_id: int, delta: dt.timedelta) -> None:
    """Move the conversation's messages so far (and its last customer message) ``delta`` back."""
    def apply(session: Any) -> None:
        for message in session.execute(select(Message).where(Message.conversation_id == conversation_id)).scalars():
            message.created_at -= delta
        conversation = session.get(Conversation, conversation_id)
        conversation.last_message_at -= delta
    store.transaction(apply)


def csat_keys(store: Store) -> List[str]:
    return [o.idempotency_key for o in all_of(store, OutboxItem) if o.idempotency_key.startswith("csat:")]


def test_a_draft_waiting_for_an_agent_keeps_the_contact_open_and_its_answer_is_the_first_response(
        store: Store) -> None:
    agent = store.transaction(lambda s: create_user(s, "anna", "correct horse battery", "agent"))
    sticker = store.transaction(store_inbound, InboundMessage(
        channel="hook", channel_message_id="s1", sender_id="42", text="[sticker]", kind="attachment",
        metadata={"attachment": "sticker"}))
    assert store.transaction(route_attachment, job_for(store, sticker.conversation_id)) is True
    [ack] = [m for m in all_of(store, Message) if m.direction.value == "out"]
    assert Purpose(ack.purpose) == Purpose.ack
    backdate(store, sticker.conversation_id, dt.timedelta(hours=10))  # it waited overnight
    assert sweep(store, utcnow()) == [] and sweep(store, utcnow() + dt.timedelta(days=1)) == []
    assert all_of(store, Contact) == [] and csat_keys(store) == []  # nobody asked to rate an unanswered sticker

    [draft] = all_of(store, Draft)
    store.transaction(decisions.edit, draft.id, agent, "Leuke sticker! Waarmee kan ik je helpen?")
    assert sweep(store, utcnow() + dt.timedelta(minutes=5)) == []  # idle counts from the answer
    [contact_id] = sweep(store, utcnow() + LATER)
    contact = store.transaction(lambda s: s.get(Contact, contact_id))
    answer_message = [m for m in all_of(store, Message) if m.sender.startswith("agent:")][0]
    inbound = store.transaction(lambda s: s.get(Message, sticker.message_id))
    assert contact.handled_by == "human"
    assert contact.first_response_seconds == (answer_message.created_at - inbound.created_at).total_seconds()
    assert contact.first_response_seconds > 10 * 3600 - 60
    assert csat_keys(store) == [f"csat:{contact_id}"] and contact.csat_asked_at > answer_message.created_at


def test_an_open_case_keeps_the_contact_open_whatever_the_mode(store: Store) -> None:
    first = receive(store, "m1")
    answer(store, first.conversation_id)
    case, _ = store.transaction(open_case, first.conversation_id, "complaint", SETTINGS)
    store.transaction(lambda s: s.execute(  # e.g. an operator put the conversation back by hand
        update(Conversation).where(Conversation.id == first.conversation_id).values(mode=Mode.bot)))
    assert store.transaction(idle_conversations, 30, utcnow() + LATER) == []
    assert store.transaction(close_idle, first.conversation_id, TAXONOMY, 30, True, utcnow() + LATER) is None
    assert all_of(store, Contact) == []


def test_service_texts_are_no_answer_and_no_rating_follows_them(store: Store) -> None:
    """The bot only said "a colleague will link your details later": recorded, no response, no rating."""
    first = receive(store, "m1", text="mijn klantnummer is 123")
    job = job_for(store, first.conversation_id)
    parse = {"text": job.text, "intent": {"name": "identify", "confidence": 0.9}, "intent_ranking": [],
             "entities": [], "language": {"name": "nl"}}
    applied = store.transaction(apply_reply, job, RasaReply(
        [{"custom": {"webcare": {"identify": {"customer_number": "123"}}}}], parse, []), POLICY, "w", SETTINGS)
    assert applied.identify == {"customer_number": "123"}
    assert store.transaction(record_identification, first.conversation_id, first.message_id, "hook", "42",
                             "unavailable", None)
    [notice] = [m for m in all_of(store, Message) if m.direction.value == "out"]
    assert Purpose(notice.purpose) == Purpose.notice
    [contact_id] = sweep(store, utcnow() + LATER)
    contact = store.transaction(lambda s: s.get(Contact, contact_id))
    assert (contact.first_response_seconds, contact.handled_by, contact.csat_asked_at) == (None, "bot", None)
    assert csat_keys(store) == []


def test_an_answer_whose_delivery_failed_is_no_answer(store: Store) -> None:
    first = receive(store, "m1")
    answer(store, first.conversation_id)
    store.transaction(lambda s: s.execute(update(Message).where(Message.direction == "out").values(status="failed")))
    [contact_id] = sweep(store, utcnow() + LATER)
    contact = store.transaction(lambda s: s.get(Contact, contact_id))
    assert contact.first_response_seconds is None and contact.csat_asked_at is None and csat_keys(store) == []
