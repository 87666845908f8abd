"""Contacts: conversation episodes, each tagged with a root cause, and CSAT once per contact.

A contact is what reports count. It begins with the first customer message after the
previous contact of the conversation and ends

* when its case is closed (the agent's root cause; handled by a human), or
* after ``contacts.idle_minutes`` without a message (either way) while the bot holds the
  conversation and nothing waits on us: no customer message still being processed, no
  draft of the episode pending an agent's review, no open case (the root cause suggested by
  its intents; a bot-only contact is tagged automatically, ``root_cause_source = "bot"``).

Only an **answer** is a response (``Message.purpose``, see :class:`bot.store.models.Purpose`):
a bot reply sent to the customer, an approved / edited / picked draft, an agent's reply. The
service's own texts (an attachment's acknowledgement, a handover notice, "we'll get back to
you", CSAT, opt-in and subscription confirmations, broadcasts) are not: the first response
is the first answer after the first customer message, the contact counts as handled by a
human when an agent's answer (or a case) was part of it, and a delivery that failed is no
answer.

Nothing is written per message: :class:`ContactCloser` turns idle stretches of messages into
contacts in the background, so the message path stays as fast as before. The figures a
report needs are stored on the contact (first response, handling time, repeat flags, CSAT),
so reports aggregate one table.

When a contact ends after the customer got an answer, they are asked once for a 1-5 rating
with service buttons (``/webcare_csat{"contact": id, "score": n}``), unless they said "stop"
(a contact without an answer is recorded, but nobody is asked to rate it); the next message
within ``contacts.csat_comment_minutes`` is kept as an optional comment.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any, Dict, List, Optional, Sequence

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.config import DEFAULTS
from bot.customer_texts import customer_text
from bot.customers.opt_ins import opted_out
from bot.pipeline.outbox import enqueue
from bot.cases.root_causes import FALLBACK_CODE, Taxonomy
from bot.pipeline.service_buttons import button_payload
from bot.store.database import Store
from bot.store.models import (
    Case,
    CaseStatus,
    ChannelIdentity,
    Contact,
    Conversation,
    Direction,
    Draft,
    DraftStatus,
    Message,
    Mode,
    OutboxItem,
    Purpose,
    Visibility,
    utcnow,
)

logger = logging.getLogger(__name__)

BATCH = 200
SWEEP_HORIZON = dt.timedelta(days=3)


def _episode(session: Session, conversation: Conversation, upto: Optional[int] = None) -> List[Message]:
    query = select(Message).where(Message.conversation_id == conversation.id,
                                  Message.id > conversation.contact_watermark)
    if upto is not None:
        query = query.where(Message.id <= upto)
    return list(session.execute(query.order_by(Message.id)).scalars())


def is_answer(message: Message) -> bool:
    """Whether ``message`` answers the customer: outbound, an answer (not one of the service's
    own texts; a row without a purpose was logged by a channel and counts), not failed."""
    return (message.direction == Direction.outbound
            and (message.purpose is None or Purpose(message.purpose) == Purpose.answer)
            and message.status != "failed")


def _human_involved(session: Session, messages: Sequence[Message]) -> bool:
    """An agent answered (a case reply, or a draft an agent decided) during the episode."""
    answers = [m for m in messages if is_answer(m)]
    if any(m.sender.startswith("agent:") for m in answers):
        return True
    outbound = [m.id for m in answers]
    if not outbound:
        return False
    return session.execute(
        select(OutboxItem.id).where(OutboxItem.message_id.in_(outbound), OutboxItem.source.in_(("draft", "agent")))
        .limit(1)).first() is not None


def record_contact(
    session: Session,
    conversation: Conversation,
    taxonomy: Taxonomy,
    *,
    case: Optional[Case] = None,
    upto: Optional[int] = None,
    ask_csat: bool = True,
    repeat_window_days: float = DEFAULTS["reports"]["repeat_window_days"],
    now: Optional[dt.datetime] = None,
) -> Optional[Contact]:
    """Close the conversation's current episode as a contact (``None`` if it has no customer message).

    With ``case`` (being closed), the agent's root cause wins and the contact counts as
    handled by a human. The first response is the first answer (:func:`is_answer`) after the
    first customer message. Moves the conversation's watermark; asks for CSAT when asked to
    and the customer got an answer.
    """
    now = now or utcnow()
    messages = _episode(session, conversation, upto)
    if not messages:
        return None
    inbound = [m for m in messages if m.direction == Direction.inbound and
               not (m.nlu or {}).get("service_command")]
    conversation.contact_watermark = messages[-1].id
    if not inbound:
        return None  # only bot/agent messages or service buttons: not a contact
    first_in = inbound[0]
    reply = next((m for m in messages if m.id > first_in.id and is_answer(m)), None)
    turns = [((m.nlu or {}).get("intent") or {}) for m in inbound]
    suggested = taxonomy.suggest((t.get("name"), t.get("confidence") or 0.0) for t in turns)
    human = case is not None or _human_involved(session, messages)
    if case is not None and case.root_cause:
        root_cause, source = case.root_cause, "agent"
    else:
        root_cause, source = suggested or FALLBACK_CODE, ("suggested" if human else "bot")
    ended = max(messages[-1].created_at, case.closed_at if case is not None and case.closed_at else messages[-1].created_at)
    contact = Contact(
        conversation_id=conversation.id,
        customer_id=conversation.customer_id,
        channel=conversation.channel,
        language=conversation.language,
        started_at=first_in.created_at,
        ended_at=ended,
        first_message_id=messages[0].id,
        last_message_id=messages[-1].id,
        customer_messages=len(inbound),
        root_cause=root_cause,
        root_cause_source=source,
        handled_by="human" if human else "bot",
        case_id=case.id if case is not None else None,
        first_response_seconds=(reply.created_at - first_in.created_at).total_seconds() if reply else None,
        handling_seconds=(ended - first_in.created_at).total_seconds(),
    )
    session.add(contact)
    session.flush()
    _mark_repeat(session, contact, dt.timedelta(days=repeat_window_days))
    if ask_csat and reply is not None:
        ask_for_rating(session, contact, conversation, now)
    elif ask_csat:
        logger.info("contacts: contact %s closed without an answer; no rating asked", contact.id)
    return contact


def _mark_repeat(session: Session, contact: Contact, window: dt.timedelta) -> None:
    """Same customer, same root cause within ``window`` (reports.repeat_window_days): the
    earlier contact was not resolved."""
    earlier = session.execute(
        select(Contact).where(
            Contact.customer_id == contact.customer_id,
            Contact.root_cause == contact.root_cause,
            Contact.id != contact.id,
            Contact.started_at < contact.started_at,
            Contact.ended_at >= contact.started_at - window,
        ).order_by(Contact.started_at.desc()).limit(1)
    ).scalar_one_or_none()
    if earlier is not None:
        contact.repeat_of_id = earlier.id
        earlier.repeated = True


def ask_for_rating(session: Session, contact: Contact, conversation: Conversation,
                   now: Optional[dt.datetime] = None) -> bool:
    """Ask for a 1-5 rating, once per contact; never after "stop", to an unreachable customer,
    or under a public comment (everyone would read the question)."""
    if contact.csat_asked_at is not None or opted_out(session, conversation.customer_id):
        return False
    if conversation.visibility == Visibility.public:
        return False
    identity = session.get(ChannelIdentity, conversation.identity_id)
    if identity is None or not identity.reachable:
        return False
    contact.csat_asked_at = now or utcnow()
    language = conversation.language
    enqueue(session, key=f"csat:{contact.id}", channel=conversation.channel, recipient=identity.external_id,
            payload={"text": customer_text("csat_question", language),
                     "buttons": [{"title": str(score), "payload": button_payload("csat", contact=contact.id, score=score)}
                                 for score in range(1, 6)]},
            source="bot", conversation_id=conversation.id, purpose=Purpose.csat)
    return True


def record_rating(session: Session, job: Any, args: Dict[str, Any],
                  comment_minutes: float = DEFAULTS["contacts"]["csat_comment_minutes"]) -> bool:
    """A rating button: stored once (the first answer counts); then the comment is invited
    (the next message within ``comment_minutes``, contacts.csat_comment_minutes)."""
    contact_id, score = args.get("contact"), args.get("score")
    if not isinstance(contact_id, int) or not isinstance(score, int) or not 1 <= score <= 5:
        logger.warning("csat: malformed rating %r", args)
        return False
    contact = session.get(Contact, contact_id)
    conversation = session.get(Conversation, job.conversation_id)
    if contact is None or conversation is None or contact.conversation_id != conversation.id:
        logger.warning("csat: contact %r is not this conversation's", contact_id)
        return False
    if contact.csat_score is not None:
        return False  # rated already: a second click changes nothing
    contact.csat_score = score
    contact.csat_answered_at = utcnow()
    conversation.csat_contact_id = contact.id
    conversation.csat_comment_until = utcnow() + dt.timedelta(minutes=comment_minutes)
    enqueue(session, key=f"csat:{contact.id}:thanks", channel=job.channel, recipient=job.recipient,
            payload={"text": customer_text("csat_thanks", conversation.language)},
            source="bot", conversation_id=conversation.id, purpose=Purpose.csat)
    return True


def record_comment(session: Session, job: Any) -> bool:
    """The message right after a rating is kept as its comment (it still goes to Rasa too)."""
    conversation = session.get(Conversation, job.conversation_id)
    if conversation is None or conversation.csat_contact_id is None:
        return False
    contact = session.get(Contact, conversation.csat_contact_id)
    conversation.csat_contact_id = None
    conversation.csat_comment_until = None
    if contact is None or contact.csat_comment:
        return False
    contact.csat_comment = job.text[:2000]
    return True


# ----------------------------------------------------------------------- closing


def idle_conversations(session: Session, idle_minutes: float, now: Optional[dt.datetime] = None,
                       limit: int = BATCH) -> List[int]:
    """Bot-held conversations silent for ``idle_minutes`` (no message either way) with messages
    not yet in a contact, where no draft of the episode waits for an agent and no case is open."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(minutes=idle_minutes)
    # Only conversations that went quiet recently (index on last_message_at): older ones were
    # closed by earlier sweeps; the horizon covers a service that was down for a while.
    horizon = cutoff - SWEEP_HORIZON
    newer = exists().where(Message.conversation_id == Conversation.id,
                           Message.id > Conversation.contact_watermark)
    drafted = exists().where(Draft.conversation_id == Conversation.id, Draft.status == DraftStatus.pending,
                             Draft.inbound_message_id > Conversation.contact_watermark)
    case_open = exists().where(Case.conversation_id == Conversation.id, Case.status != CaseStatus.closed)
    # last_message_at is the customer's; an answer sent since (a draft approved late) restarts the clock
    recent = exists().where(Message.conversation_id == Conversation.id,
                            Message.id > Conversation.contact_watermark, Message.created_at >= cutoff)
    return list(session.execute(
        select(Conversation.id)
        .where(Conversation.last_message_at < cutoff, Conversation.last_message_at >= horizon,
               Conversation.mode != Mode.human, newer, ~drafted, ~case_open, ~recent)
        .order_by(Conversation.last_message_at).limit(limit)
    ).scalars())


def waiting_on_us(session: Session, conversation: Conversation) -> Optional[str]:
    """Why the conversation's episode cannot end yet (``None``: nothing waits on us)."""
    pending = session.execute(select(Message.id).where(
        Message.conversation_id == conversation.id, Message.direction == Direction.inbound,
        Message.status == "received").limit(1)).first()
    if pending is not None:
        return "a customer message is still being processed"
    if session.execute(select(Draft.id).where(
            Draft.conversation_id == conversation.id, Draft.status == DraftStatus.pending,
            Draft.inbound_message_id > conversation.contact_watermark).limit(1)).first() is not None:
        return "a draft waits for an agent"
    if session.execute(select(Case.id).where(
            Case.conversation_id == conversation.id, Case.status != CaseStatus.closed).limit(1)).first() is not None:
        return "a case is open"
    return None


def close_idle(session: Session, conversation_id: int, taxonomy: Taxonomy, idle_minutes: float,
               ask_csat: bool, now: Optional[dt.datetime] = None,
               repeat_window_days: float = DEFAULTS["reports"]["repeat_window_days"]) -> Optional[int]:
    """Close one idle conversation's episode (re-checked: a message may have arrived meanwhile).

    Idle counts from the episode's last message either way, so an answer sent late (a draft
    approved the next morning) gets its ``idle_minutes`` before the contact ends and the
    rating is asked. Nothing closes while :func:`waiting_on_us` names a reason.
    """
    now = now or utcnow()
    cutoff = now - dt.timedelta(minutes=idle_minutes)
    conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.mode == Mode.human or conversation.last_message_at >= cutoff:
        return None
    reason = waiting_on_us(session, conversation)
    if reason is not None:
        logger.debug("contacts: conversation %s stays open: %s", conversation_id, reason)
        return None
    last = session.execute(select(func.max(Message.created_at)).where(
        Message.conversation_id == conversation_id, Message.id > conversation.contact_watermark)).scalar()
    if last is not None and last >= cutoff:
        return None  # an answer went out recently: idle from there
    contact = record_contact(session, conversation, taxonomy, ask_csat=ask_csat,
                             repeat_window_days=repeat_window_days, now=now)
    return contact.id if contact is not None else None


class ContactCloser:
    """Background task: closes idle episodes as contacts (and asks for CSAT)."""

    def __init__(self, store: Store, taxonomy: Taxonomy, idle_minutes: float, ask_csat: bool,
                 interval_seconds: float = 30.0,
                 repeat_window_days: float = DEFAULTS["reports"]["repeat_window_days"]) -> None:
        self.store = store
        self.repeat_window_days = repeat_window_days
        self.taxonomy = taxonomy
        self.idle_minutes = idle_minutes
        self.ask_csat = ask_csat
        self.interval = interval_seconds

    async def sweep(self) -> int:
        """Close what is idle now; returns the number of contacts made."""
        made = 0
        for conversation_id in await self.store.run(idle_conversations, self.idle_minutes):
            try:
                contact_id = await self.store.run(close_idle, conversation_id, self.taxonomy,
                                                  self.idle_minutes, self.ask_csat,
                                                  repeat_window_days=self.repeat_window_days)
            except IntegrityError:  # another replica recorded this episode at the same moment
                logger.info("contacts: conversation %s was closed by another replica", conversation_id)
                continue
            made += contact_id is not None
        return made

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("contacts: closing idle conversations failed; retrying")
            await asyncio.sleep(self.interval)
