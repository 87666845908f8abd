"""Contacts: conversation episodes, each tagged with a root cause, and CSAT once per contact.

A contact is what reports count. It begins with the first customer message after the
previous contact of the conversation and ends

* when its case is closed (the agent's root cause; handled by a human), or
* after ``contacts.idle_minutes`` without a message while the bot holds the conversation
  (the root cause suggested by its intents; a bot-only contact is tagged automatically,
  ``root_cause_source = "bot"``).

Nothing is written per message: :class:`ContactCloser` turns idle stretches of messages into
contacts in the background, so the message path stays as fast as before. The figures a
report needs are stored on the contact (first response, handling time, repeat flags, CSAT),
so reports aggregate one table.

When a contact ends, the customer is asked once for a 1-5 rating with service buttons
(``/webcare_csat{"contact": id, "score": n}``), unless they said "stop"; the next message
within ``contacts.csat_comment_minutes`` is kept as an optional comment.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any, Dict, List, Optional, Sequence

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.customer_texts import customer_text
from bot.pipeline.outbox import enqueue
from bot.cases.root_causes import FALLBACK_CODE, Taxonomy
from bot.pipeline.service_commands import button_payload, handler
from bot.store.database import Store
from bot.store.models import (
    Case,
    ChannelIdentity,
    Contact,
    Conversation,
    Direction,
    Message,
    Mode,
    OutboxItem,
    utcnow,
)

logger = logging.getLogger(__name__)

REPEAT_WINDOW = dt.timedelta(days=7)  # set from reports.repeat_window_days at start-up
BATCH = 200
SWEEP_HORIZON = dt.timedelta(days=3)
CSAT_COMMENT_MINUTES = 10.0  # set from contacts.csat_comment_minutes at start-up


def _episode(session: Session, conversation: Conversation, upto: Optional[int] = None) -> List[Message]:
    query = select(Message).where(Message.conversation_id == conversation.id,
                                  Message.id > conversation.contact_watermark)
    if upto is not None:
        query = query.where(Message.id <= upto)
    return list(session.execute(query.order_by(Message.id)).scalars())


def _human_involved(session: Session, messages: Sequence[Message]) -> bool:
    """An agent answered (a case reply, or a draft an agent decided) during the episode."""
    if any(m.sender.startswith("agent:") for m in messages):
        return True
    outbound = [m.id for m in messages if m.direction == Direction.outbound]
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
    now: Optional[dt.datetime] = None,
) -> Optional[Contact]:
    """Close the conversation's current episode as a contact (``None`` if it has no customer message).

    With ``case`` (being closed), the agent's root cause wins and the contact counts as
    handled by a human. Moves the conversation's watermark; asks for CSAT when asked to.
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
    reply = next((m for m in messages if m.direction == Direction.outbound and m.id > first_in.id), None)
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
    _mark_repeat(session, contact)
    if ask_csat:
        ask_for_rating(session, contact, conversation, now)
    return contact


def _mark_repeat(session: Session, contact: Contact) -> None:
    """Same customer, same root cause within 7 days: the earlier contact was not resolved."""
    earlier = session.execute(
        select(Contact).where(
            Contact.customer_id == contact.customer_id,
            Contact.root_cause == contact.root_cause,
            Contact.id != contact.id,
            Contact.started_at < contact.started_at,
            Contact.ended_at >= contact.started_at - REPEAT_WINDOW,
        ).order_by(Contact.started_at.desc()).limit(1)
    ).scalar_one_or_none()
    if earlier is not None:
        contact.repeat_of_id = earlier.id
        earlier.repeated = True


def ask_for_rating(session: Session, contact: Contact, conversation: Conversation,
                   now: Optional[dt.datetime] = None) -> bool:
    """Ask for a 1-5 rating, once per contact; never after "stop" or to an unreachable customer."""
    from bot.customers.opt_ins import opted_out

    if contact.csat_asked_at is not None or opted_out(session, conversation.customer_id):
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
            source="bot", conversation_id=conversation.id)
    return True


@handler("csat")
def record_rating(session: Session, job: Any, args: Dict[str, Any]) -> bool:
    """A rating button: stored once (the first answer counts); then the comment is invited."""
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
    conversation.csat_comment_until = utcnow() + dt.timedelta(minutes=CSAT_COMMENT_MINUTES)
    enqueue(session, key=f"csat:{contact.id}:thanks", channel=job.channel, recipient=job.recipient,
            payload={"text": customer_text("csat_thanks", conversation.language)},
            source="bot", conversation_id=conversation.id)
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
    """Bot-held conversations silent for ``idle_minutes`` with messages not yet in a contact."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(minutes=idle_minutes)
    # Only conversations that went quiet recently (index on last_message_at): older ones were
    # closed by earlier sweeps; the horizon covers a service that was down for a while.
    horizon = cutoff - SWEEP_HORIZON
    newer = exists().where(Message.conversation_id == Conversation.id,
                           Message.id > Conversation.contact_watermark)
    return list(session.execute(
        select(Conversation.id)
        .where(Conversation.last_message_at < cutoff, Conversation.last_message_at >= horizon,
               Conversation.mode != Mode.human, newer)
        .order_by(Conversation.last_message_at).limit(limit)
    ).scalars())


def close_idle(session: Session, conversation_id: int, taxonomy: Taxonomy, idle_minutes: float,
               ask_csat: bool, now: Optional[dt.datetime] = None) -> Optional[int]:
    """Close one idle conversation's episode (re-checked: a message may have arrived meanwhile)."""
    now = now or utcnow()
    conversation = session.get(Conversation, conversation_id)
    if (conversation is None or conversation.mode == Mode.human
            or conversation.last_message_at >= now - dt.timedelta(minutes=idle_minutes)):
        return None
    pending = session.execute(select(Message.id).where(
        Message.conversation_id == conversation_id, Message.direction == Direction.inbound,
        Message.status == "received").limit(1)).first()
    if pending is not None:
        return None  # still being answered
    contact = record_contact(session, conversation, taxonomy, ask_csat=ask_csat, now=now)
    return contact.id if contact is not None else None


class ContactCloser:
    """Background task: closes idle episodes as contacts (and asks for CSAT)."""

    def __init__(self, store: Store, taxonomy: Taxonomy, idle_minutes: float, ask_csat: bool,
                 interval_seconds: float = 30.0, on_outbox: Optional[Any] = None) -> None:
        self.store = store
        self.taxonomy = taxonomy
        self.idle_minutes = idle_minutes
        self.ask_csat = ask_csat
        self.interval = interval_seconds
        self.on_outbox = on_outbox

    async def sweep(self) -> int:
        """Close what is idle now; returns the number of contacts made."""
        made = 0
        for conversation_id in await self.store.run(idle_conversations, self.idle_minutes):
            try:
                contact_id = await self.store.run(close_idle, conversation_id, self.taxonomy,
                                                  self.idle_minutes, self.ask_csat)
            except IntegrityError:  # another replica recorded this episode at the same moment
                logger.info("contacts: conversation %s was closed by another replica", conversation_id)
                continue
            made += contact_id is not None
        if made and self.on_outbox is not None:
            self.on_outbox()
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
