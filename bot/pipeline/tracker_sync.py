"""Delivers queued events to Rasa trackers: pause, resume and agents' replies.

Rows of :class:`bot.store.models.TrackerEvent` are committed with the change they mirror (a
case opened or closed, an agent's reply) and posted here to Rasa's HTTP API
(``POST /conversations/{sender}/tracker/events``), oldest first per conversation. A row that
fails waits with backoff and holds back the later rows of the same conversation, so the
tracker always sees them in order. The worker flushes a conversation's rows before it sends
that conversation's next customer message to Rasa (:meth:`TrackerSync.flush`): a ``resume``
is in place before the first message after a case closes, a ``pause`` before the next
message of a human-held conversation.

Across replicas, a conversation's rows are only delivered by whoever holds that
conversation's worker lease (the worker while answering it, or this task after taking the
lease), so two replicas never post the same rows or post them out of order.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
import weakref
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union
from urllib.parse import quote

import aiohttp
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.events import ConversationReleased, emit
from bot.pipeline.leases import lease_conversation, release
from bot.pipeline.rasa_client import RasaReplicas, RasaUnavailable, unreachable
from bot.store.database import Store
from bot.store.models import Conversation, TrackerEvent, utcnow

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 60.0
BATCH = 50


def pending_for(session: Session, sender: str) -> List[Tuple[int, List[Dict[str, Any]]]]:
    """The sender's undelivered rows, oldest first: (id, events)."""
    rows = session.execute(
        select(TrackerEvent.id, TrackerEvent.events)
        .where(TrackerEvent.rasa_sender_id == sender, TrackerEvent.delivered_at.is_(None))
        .order_by(TrackerEvent.id)
    ).all()
    return [(row[0], row[1]) for row in rows]


def has_pending(session: Session, sender: str) -> bool:
    """Whether the sender has undelivered tracker events."""
    return session.execute(
        select(TrackerEvent.id)
        .where(TrackerEvent.rasa_sender_id == sender, TrackerEvent.delivered_at.is_(None))
        .limit(1)
    ).first() is not None


def due_senders(session: Session, limit: int = BATCH) -> List[str]:
    """Senders whose oldest undelivered row is due."""
    oldest = (
        select(TrackerEvent.rasa_sender_id, func.min(TrackerEvent.id).label("first"))
        .where(TrackerEvent.delivered_at.is_(None))
        .group_by(TrackerEvent.rasa_sender_id)
        .subquery()
    )
    return list(session.execute(
        select(oldest.c.rasa_sender_id)
        .join(TrackerEvent, TrackerEvent.id == oldest.c.first)
        .where(TrackerEvent.next_attempt_at <= utcnow())
        .order_by(oldest.c.first)
        .limit(limit)
    ).scalars())


def lease_sender(session: Session, sender: str, owner: str) -> Optional[int]:
    """Take the worker lease of the sender's conversation; its id, or None if someone holds it."""
    conversation_id = session.execute(
        select(Conversation.id).where(Conversation.rasa_sender_id == sender)
        .order_by(Conversation.id.desc()).limit(1)).scalar_one_or_none()
    if conversation_id is None or not lease_conversation(session, conversation_id, owner):
        return None
    return conversation_id


def mark_delivered(session: Session, row_id: int) -> None:
    session.execute(
        update(TrackerEvent).where(TrackerEvent.id == row_id)
        .values(delivered_at=utcnow()).execution_options(synchronize_session=False)
    )


def mark_failed(session: Session, row_id: int, error: str) -> float:
    """Record a failed attempt; returns the backoff in seconds."""
    row = session.get(TrackerEvent, row_id)
    if row is None:
        return 0.0
    row.attempts += 1
    delay = min(MAX_BACKOFF_SECONDS, 2.0 ** min(row.attempts, 6))
    row.next_attempt_at = utcnow() + dt.timedelta(seconds=delay)
    row.last_error = error[:2000]
    return delay


class TrackerSync:
    """Posts queued tracker events to Rasa, in order per conversation."""

    def __init__(self, store: Store, rasa_url: Union[str, Sequence[str]], timeout_seconds: float = 10.0) -> None:
        self.store = store
        self.replicas = RasaReplicas(rasa_url)
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: Optional[aiohttp.ClientSession] = None
        self._wake = asyncio.Event()
        self.owner = f"tracker-sync-{uuid.uuid4().hex[:12]}"
        self._locks: "weakref.WeakValueDictionary[str, asyncio.Lock]" = weakref.WeakValueDictionary()

    def wake(self) -> None:
        """New rows were committed: deliver them now."""
        self._wake.set()

    async def _post(self, sender: str, events: List[Dict[str, Any]]) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        replicas = self.replicas.for_sender(sender)  # the replica the worker uses for sender
        for position, base in enumerate(replicas):
            url = f"{base}/conversations/{quote(sender, safe='')}/tracker/events?include_events=NONE"
            try:
                async with self._session.post(url, json=events) as response:
                    if response.status >= 300:
                        raise RasaUnavailable(
                            f"Rasa answered {response.status} to tracker events: {(await response.text())[:200]}")
                    return
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                if unreachable(exc) and position + 1 < len(replicas):
                    continue  # never reached that replica: the next one shares the tracker store
                raise RasaUnavailable(f"Rasa unreachable at {base}: {type(exc).__name__}") from exc

    async def flush(self, sender: str) -> int:
        """Deliver the sender's undelivered rows now, in order; raises RasaUnavailable.

        The caller holds the conversation's worker lease (see the module docstring).
        """
        lock = self._locks.get(sender)
        if lock is None:
            lock = self._locks[sender] = asyncio.Lock()
        delivered = 0
        async with lock:
            for row_id, events in await self.store.run(pending_for, sender):
                try:
                    await self._post(sender, events)
                except RasaUnavailable as exc:
                    await self.store.run(mark_failed, row_id, str(exc))
                    raise
                await self.store.run(mark_delivered, row_id)
                delivered += 1
        return delivered

    async def run(self) -> None:
        """Deliver due rows until cancelled."""
        while True:
            try:
                senders = await self.store.run(due_senders)
            except Exception:
                logger.exception("tracker sync: reading the queue failed; retrying")
                senders = []
            for sender in senders:
                try:
                    conversation_id = await self.store.run(lease_sender, sender, self.owner)
                except Exception:
                    logger.exception("tracker sync: leasing the conversation of %s failed", sender)
                    continue
                if conversation_id is None:
                    continue  # a worker holds it and flushes before its next Rasa call
                try:
                    await self.flush(sender)
                except RasaUnavailable as exc:
                    logger.warning("tracker sync: %s; retried with backoff", exc)
                except Exception:
                    logger.exception("tracker sync: delivering events of %s failed", sender)
                finally:
                    await self._release(conversation_id)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass

    async def _release(self, conversation_id: int) -> None:
        def give_back(session: Session) -> None:
            release(session, conversation_id, self.owner, 0)
            # messages that arrived meanwhile: the worker claims them now
            emit(session, ConversationReleased(conversation_id))

        try:
            await self.store.run(give_back)
        except Exception:
            logger.exception("tracker sync: could not release conversation %s", conversation_id)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
