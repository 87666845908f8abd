"""Intake: commit every customer message before the channel gets its 2xx.

Idempotent on (channel, channel message id): the same message delivered twice is stored
once. Each message is committed as ``received``; the worker answers it afterwards, so a
crash or a Rasa outage between intake and processing loses nothing.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.errors import BadRequest
from bot.store.database import Store
from bot.store.models import (
    ChannelIdentity,
    Conversation,
    Customer,
    Direction,
    InboundStatus,
    Message,
    utcnow,
)
from bot.worker import Job, has_received, build_job, lease_conversation, next_job
from connectors.base import InboundMessage

if TYPE_CHECKING:
    from bot.worker import Worker

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 4000  # longer texts are truncated for the bot; the customer is told


@dataclass(frozen=True)
class AcceptResult:
    message_id: int
    conversation_id: int
    duplicate: bool
    truncated: bool = False
    job: Optional["Job"] = None  # set when the local worker leased the conversation


class Intake:
    """Stores inbound messages and hands them to the worker.

    When the local worker has room, intake leases the conversation for it in the same
    transaction and passes the job along in memory (no polling round trip); otherwise the
    worker (of this or another replica) finds the committed message on its own.
    """

    def __init__(self, store: Store, worker: Optional["Worker"] = None) -> None:
        self.store = store
        self.worker = worker

    async def accept(self, inbound: InboundMessage) -> AcceptResult:
        """Commit ``inbound`` (or find it, if it was delivered before)."""
        inbound = clean_inbound(inbound)
        owner = self.worker.owner if self.worker is not None and self.worker.has_capacity() else None
        for attempt in range(3):
            try:
                result = await self.store.run(store_inbound, inbound, owner)
                break
            except IntegrityError:
                # A concurrent delivery created the same identity or message first: look again.
                if attempt == 2:
                    raise
        if self.worker is not None and not result.duplicate:
            if result.job is not None:
                self.worker.submit(result.job)
            else:
                self.worker.wake()
        return result


def clean_inbound(inbound: InboundMessage) -> InboundMessage:
    """Refuse what no store can hold (lone surrogates: 400); drop NUL characters (PostgreSQL)."""
    def clean(value: Any, where: str) -> Any:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise BadRequest(f"{where} is not valid Unicode text") from None
            return value.replace("\x00", "")
        if isinstance(value, float) and not math.isfinite(value):
            raise BadRequest(f"{where} holds {value}: numbers must be finite (PostgreSQL JSON)")
        if isinstance(value, dict):
            return {clean(k, where): clean(v, where) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v, where) for v in value]
        return value

    ids = (inbound.channel_message_id, inbound.sender_id)
    if any("\x00" in str(v) for v in ids):
        raise BadRequest("the message id and the sender id must not contain NUL characters")
    text = clean(inbound.text, "the text")
    if inbound.text and not text.strip():
        raise BadRequest("the text is empty once NUL characters are removed")
    return dataclasses.replace(
        inbound,
        channel_message_id=clean(inbound.channel_message_id, "the message id"),
        sender_id=clean(inbound.sender_id, "the sender id"),
        text=text,
        sender_name=clean(inbound.sender_name, "the sender's name"),
        language_hint=clean(inbound.language_hint, "the language"),
        metadata=clean(dict(inbound.metadata), "the metadata"),
    )


def find_or_create_conversation(session: Session, inbound: InboundMessage) -> Conversation:
    """The open conversation of the sender's channel identity, created on first contact.

    ``session.info["first_contact"]`` tells the caller whether the identity is new.
    """
    identity = session.execute(
        select(ChannelIdentity).where(
            ChannelIdentity.channel == inbound.channel,
            ChannelIdentity.external_id == inbound.sender_id,
        )
    ).scalar_one_or_none()
    session.info["first_contact"] = identity is None
    if identity is None:
        customer = Customer(display_name=_name(inbound.sender_name), language=_language(inbound.language_hint))
        session.add(customer)
        session.flush()
        identity = ChannelIdentity(
            customer_id=customer.id,
            channel=inbound.channel,
            external_id=inbound.sender_id,
            display_name=_name(inbound.sender_name),
        )
        session.add(identity)
        session.flush()
    elif not identity.reachable:
        identity.reachable = True  # they wrote to us again: they unblocked the bot
    conversation = None if session.info["first_contact"] else session.execute(
        select(Conversation)
        .where(Conversation.identity_id == identity.id, Conversation.closed_at.is_(None))
        .order_by(Conversation.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if conversation is None:
        conversation = Conversation(
            customer_id=identity.customer_id,
            identity_id=identity.id,
            channel=inbound.channel,
            rasa_sender_id=f"{inbound.channel}:{inbound.sender_id}",
            language=_language(inbound.language_hint),
        )
        session.add(conversation)
        session.flush()
    return conversation


def store_inbound(session: Session, inbound: InboundMessage, lease_for: Optional[str] = None) -> AcceptResult:
    """The unit of work of :meth:`Intake.accept`; leases the conversation for ``lease_for``."""
    existing = session.execute(
        select(Message.id, Message.conversation_id).where(
            Message.channel == inbound.channel,
            Message.direction == Direction.inbound,
            Message.channel_message_id == inbound.channel_message_id,
        )
    ).first()
    if existing is not None:
        return AcceptResult(existing.id, existing.conversation_id, duplicate=True)
    conversation = find_or_create_conversation(session, inbound)
    text = inbound.text
    truncated = bool(text) and len(text) > MAX_TEXT_CHARS
    metadata = dict(inbound.metadata)
    if truncated:
        metadata["original_length"] = len(text)
        text = text[:MAX_TEXT_CHARS]
    now = utcnow()
    message = Message(
        conversation_id=conversation.id,
        direction=Direction.inbound,
        channel=inbound.channel,
        channel_message_id=inbound.channel_message_id,
        sender="customer",
        text=text,
        payload={"kind": inbound.kind, "metadata": metadata, "truncated": truncated},
        language_hint=_language(inbound.language_hint),
        status=InboundStatus.received.value,
        created_at=now,
    )
    session.add(message)
    conversation.last_message_at = now
    session.flush()
    job = None
    if lease_for is not None and lease_conversation(session, conversation.id, lease_for):
        # Leased just now: this message is the job unless older ones still wait. A first
        # contact has nothing older and no tracker events yet.
        first_contact = bool(session.info.get("first_contact"))
        if not first_contact and has_received(session, conversation.id, before=message.id):
            job = next_job(session, conversation.id, lease_for)
        else:
            job = build_job(session, conversation, message, tracker_pending=None if not first_contact else False)
    return AcceptResult(message.id, conversation.id, duplicate=False, truncated=truncated, job=job)


def _name(name: Optional[str]) -> Optional[str]:
    return name[:200] if name else None


def _language(hint: Optional[str]) -> Optional[str]:
    if not hint:
        return None
    primary = hint.replace("_", "-").split("-")[0].lower()
    return primary if primary.isalpha() and 2 <= len(primary) <= 3 else None
