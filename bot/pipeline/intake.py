"""Intake: commit every customer message before the channel gets its 2xx.

Idempotent on (channel, channel message id): the same message delivered twice is stored
once. Each message is committed as ``received``; the worker answers it afterwards, so a
crash or a Rasa outage between intake and processing loses nothing.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.errors import InvalidInput
from bot.store.database import Store
from bot.store.models import (
    ChannelIdentity,
    Conversation,
    Customer,
    Direction,
    InboundStatus,
    Message,
    Mode,
    Visibility,
    utcnow,
)
from bot.pipeline.delivery_receipts import record_delivery
from bot.pipeline.leases import LEASE_SECONDS, lease_conversation
from bot.pipeline.worker import Job, Worker, build_job, has_received, next_job
from connectors.base import DeliveryUpdate, InboundMessage

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

    Group commit: messages that arrive while a commit is under way are stored together in
    the next transaction (at most :data:`MAX_BATCH`), each answered once that transaction is
    committed. One at a time nothing waits; under load one commit (an fsync on SQLite, a
    round trip on PostgreSQL) serves many webhooks instead of one each. A batch that meets a
    concurrent writer's row (the same new customer or message, from another replica) is
    stored again message by message, each in its own transaction (so is a batch that failed
    for any other reason: each webhook then gets its own outcome).
    """

    MAX_BATCH = 64

    def __init__(self, store: Store, worker: Optional[Worker] = None) -> None:
        self.store = store
        self.worker = worker
        self._waiting: List[Tuple[InboundMessage, "asyncio.Future[AcceptResult]"]] = []
        self._flushing = False
        self._flusher: Optional["asyncio.Task[None]"] = None

    async def accept(self, inbound: InboundMessage) -> AcceptResult:
        """Commit ``inbound`` (or find it, if it was delivered before)."""
        inbound = clean_inbound(inbound)
        future: "asyncio.Future[AcceptResult]" = asyncio.get_running_loop().create_future()
        self._waiting.append((inbound, future))
        if not self._flushing:
            self._flushing = True
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def record_delivery(self, update: DeliveryUpdate) -> int:
        """Commit a delivery receipt (sent, delivered, read, failed) before the channel's 2xx."""
        return await self.store.run(record_delivery, update)

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:self.MAX_BATCH], self._waiting[self.MAX_BATCH:]
                owner = self.worker.owner if self.worker is not None else None
                leases = self.worker.free_capacity() if self.worker is not None else 0
                messages = [inbound for inbound, _ in batch]
                try:
                    results: List[Any] = await self.store.run(store_batch, messages, owner, leases)
                except Exception:
                    # Another replica created the same identity or message first (or, on
                    # PostgreSQL, locked the same conversations in another order): each
                    # message on its own, looking again; each webhook gets its own outcome.
                    results = [await self._store_one(inbound) for inbound in messages]
                for (_, future), result in zip(batch, results):
                    if isinstance(result, BaseException):
                        if not future.done():
                            future.set_exception(result)
                        continue
                    self._hand_over(result)
                    if not future.done():
                        future.set_result(result)
        finally:
            self._flushing = False

    async def _store_one(self, inbound: InboundMessage) -> Any:
        owner = self.worker.owner if self.worker is not None and self.worker.has_capacity() else None
        for attempt in range(3):
            try:
                return await self.store.run(store_inbound, inbound, owner)
            except IntegrityError as exc:
                if attempt == 2:
                    return exc
            except Exception as exc:
                return exc
        raise AssertionError("unreachable")

    def _hand_over(self, result: AcceptResult) -> None:
        if self.worker is not None and not result.duplicate:
            if result.job is not None:
                self.worker.submit(result.job)
            else:
                self.worker.wake()


def store_batch(session: Session, messages: List[InboundMessage], lease_for: Optional[str],
                leases: int) -> List[AcceptResult]:
    """:func:`store_inbound` for each message in one transaction; leases at most ``leases``
    conversations for ``lease_for`` (the local worker's free places)."""
    results = []
    for inbound in messages:
        result = store_inbound(session, inbound, lease_for if leases > 0 else None)
        if result.job is not None:
            leases -= 1
        results.append(result)
    return results


def clean_inbound(inbound: InboundMessage) -> InboundMessage:
    """Refuse what no store can hold (lone surrogates: 400); drop NUL characters (PostgreSQL)."""
    def clean(value: Any, where: str) -> Any:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInput(f"{where} is not valid Unicode text") from None
            return value.replace("\x00", "")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(f"{where} holds {value}: numbers must be finite (PostgreSQL JSON)")
        if isinstance(value, dict):
            return {clean(k, where): clean(v, where) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v, where) for v in value]
        return value

    if inbound.visibility not in (Visibility.private.value, Visibility.public.value):
        raise InvalidInput(f"visibility must be 'private' or 'public', not {inbound.visibility!r}")
    ids = (inbound.channel_message_id, inbound.sender_id)
    if any("\x00" in str(v) for v in ids):
        raise InvalidInput("the message id and the sender id must not contain NUL characters")
    text = clean(inbound.text, "the text")
    if inbound.text and not text.strip():
        raise InvalidInput("the text is empty once NUL characters are removed")
    return dataclasses.replace(
        inbound,
        channel_message_id=clean(inbound.channel_message_id, "the message id"),
        sender_id=clean(inbound.sender_id, "the sender id"),
        text=text,
        sender_name=clean(inbound.sender_name, "the sender's name"),
        language_hint=clean(inbound.language_hint, "the language"),
        metadata=clean(dict(inbound.metadata), "the metadata"),
    )


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
    text = inbound.text
    truncated = bool(text) and len(text) > MAX_TEXT_CHARS
    metadata = dict(inbound.metadata)
    if truncated:
        metadata["original_length"] = len(text)
        text = text[:MAX_TEXT_CHARS]
    payload = {"kind": inbound.kind, "metadata": metadata, "truncated": truncated}
    identity = session.execute(
        select(ChannelIdentity).where(
            ChannelIdentity.channel == inbound.channel,
            ChannelIdentity.external_id == inbound.sender_id,
        )
    ).scalar_one_or_none()
    if identity is None:
        return _first_contact(session, inbound, text, payload, truncated, lease_for)

    if not identity.reachable:
        identity.reachable = True  # they wrote to us again: they unblocked the bot
    visibility = Visibility(inbound.visibility)
    conversation = session.execute(
        select(Conversation)
        .where(Conversation.identity_id == identity.id, Conversation.closed_at.is_(None),
               Conversation.visibility == visibility,
               Conversation.thread_id.is_(None) if inbound.thread is None
               else Conversation.thread_id == inbound.thread)
        .order_by(Conversation.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    new_conversation = conversation is None
    if conversation is None:
        conversation = Conversation(
            customer_id=identity.customer_id,
            identity_id=identity.id,
            channel=inbound.channel,
            rasa_sender_id=rasa_sender_id(inbound),
            language=_language(inbound.language_hint),
            visibility=visibility,
            thread_id=inbound.thread,
        )
        session.add(conversation)
        session.flush()
    now = utcnow()
    message = Message(
        conversation_id=conversation.id,
        direction=Direction.inbound,
        channel=inbound.channel,
        channel_message_id=inbound.channel_message_id,
        sender="customer",
        text=text,
        payload=payload,
        language_hint=_language(inbound.language_hint),
        status=InboundStatus.received.value,
        created_at=now,
    )
    session.add(message)
    conversation.last_message_at = now
    session.flush()
    job = None
    if lease_for is not None and lease_conversation(session, conversation.id, lease_for):
        # Leased just now: this message is the job unless older ones still wait. A new
        # conversation has nothing older.
        if not new_conversation and has_received(session, conversation.id, before=message.id):
            job = next_job(session, conversation.id, lease_for)
        else:
            job = build_job(session, conversation, message)
    return AcceptResult(message.id, conversation.id, duplicate=False, truncated=truncated, job=job)


# Built once: the values come as parameters, so SQLAlchemy's compiled-statement cache is hit
# without building (and hashing) a new statement per message.
_INSERT_CUSTOMER = insert(Customer)
_INSERT_IDENTITY = insert(ChannelIdentity)
_INSERT_CONVERSATION = insert(Conversation)
_INSERT_MESSAGE = insert(Message)


def _first_contact(session: Session, inbound: InboundMessage, text: Optional[str], payload: Dict[str, Any],
                   truncated: bool, lease_for: Optional[str]) -> AcceptResult:
    """A sender we have never seen: customer, channel identity, conversation and message.

    The hot path of a busy channel, so plain INSERTs (one statement each; the new ids come
    back with the insert) instead of ORM flushes; nothing to look up, since nothing about
    this sender exists yet. The new conversation is created already leased for
    ``lease_for``: nobody else can have seen it, so the lease is ours.
    """
    now = utcnow()
    language = _language(inbound.language_hint)
    name = _name(inbound.sender_name)
    customer_id = session.execute(_INSERT_CUSTOMER, {
        "display_name": name, "language": language, "flags": [], "created_at": now,
    }).inserted_primary_key[0]
    identity_id = session.execute(_INSERT_IDENTITY, {
        "customer_id": customer_id, "channel": inbound.channel, "external_id": inbound.sender_id,
        "display_name": name, "created_at": now,
    }).inserted_primary_key[0]
    sender_id = rasa_sender_id(inbound)
    conversation = {"customer_id": customer_id, "identity_id": identity_id, "channel": inbound.channel,
                    "rasa_sender_id": sender_id, "language": language, "mode": Mode.bot,
                    "created_at": now, "last_message_at": now, "lease_owner": None, "lease_until": None,
                    "visibility": Visibility(inbound.visibility), "thread_id": inbound.thread}
    if lease_for is not None:
        conversation.update(lease_owner=lease_for, lease_until=now + dt.timedelta(seconds=LEASE_SECONDS))
    conversation_id = session.execute(_INSERT_CONVERSATION, conversation).inserted_primary_key[0]
    message_id = session.execute(_INSERT_MESSAGE, {
        "conversation_id": conversation_id, "direction": Direction.inbound, "channel": inbound.channel,
        "channel_message_id": inbound.channel_message_id, "sender": "customer", "text": text, "payload": payload,
        "language_hint": language, "status": InboundStatus.received.value, "attempts": 0, "created_at": now,
    }).inserted_primary_key[0]
    job = None
    if lease_for is not None:
        metadata = payload["metadata"]
        job = Job(
            message_id=message_id, conversation_id=conversation_id, text=text or "", kind=inbound.kind,
            truncated=truncated, attempts=0, channel=inbound.channel, recipient=inbound.sender_id,
            rasa_sender_id=sender_id, mode=Mode.bot, language=language, language_hint=language,
            attachment=metadata.get("attachment"), command=metadata.get("command"),
            tracker_pending=False,  # a first contact has no tracker events yet
            csat_comment_open=False,
        )
    return AcceptResult(message_id, conversation_id, duplicate=False, truncated=truncated, job=job)


def rasa_sender_id(inbound: InboundMessage) -> str:
    """The Rasa conversation of ``inbound``: one per address, and one per public thread."""
    base = f"{inbound.channel}:{inbound.sender_id}"
    return base if inbound.visibility == Visibility.private.value else f"{base}:public:{inbound.thread or ''}"


def _name(name: Optional[str]) -> Optional[str]:
    return name[:200] if name else None


def _language(hint: Optional[str]) -> Optional[str]:
    if not hint:
        return None
    primary = hint.replace("_", "-").split("-")[0].lower()
    return primary if primary.isalpha() and 2 <= len(primary) <= 3 else None
