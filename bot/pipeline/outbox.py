"""The outbox: every outbound message is committed here before any delivery attempt."""
from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, Optional, Sequence, Tuple

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from bot.events import OutboxQueued, emit
from bot.store.models import Direction, Message, OutboxItem, OutboxStatus, Purpose, utcnow


def enqueue(
    session: Session,
    *,
    key: str,
    channel: str,
    recipient: str,
    payload: Dict[str, Any],
    source: str,
    sender: str = "bot",
    conversation_id: Optional[int] = None,
    not_before: Optional[dt.datetime] = None,
    purpose: Purpose = Purpose.answer,
) -> OutboxItem:
    """Queue ``payload`` (``{"text": ..., "buttons": [...]}``) for ``recipient`` on ``channel``.

    Idempotent on ``key``: queuing the same key twice returns the first item, so a retried
    unit of work never sends twice. The outbound message is logged in ``messages`` too
    (status follows delivery), with its ``purpose``: the service's own texts (an
    acknowledgement, a handover notice, ...) pass theirs, so that contacts never take them
    for an answer. Runs in the caller's transaction.
    """
    existing = session.execute(
        select(OutboxItem).where(OutboxItem.idempotency_key == key)
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    message = None
    if conversation_id is not None:
        message = Message(
            conversation_id=conversation_id,
            direction=Direction.outbound,
            channel=channel,
            sender=sender,
            text=payload.get("text"),
            payload=payload,
            status="queued",
            purpose=purpose,
        )
        session.add(message)
        session.flush()
    item = OutboxItem(
        idempotency_key=key,
        conversation_id=conversation_id,
        message_id=message.id if message else None,
        channel=channel,
        recipient=recipient,
        payload=payload,
        source=source,
        status=OutboxStatus.pending,
        next_attempt_at=not_before or utcnow(),
        purpose=purpose,
    )
    session.add(item)
    emit(session, OutboxQueued(channel))
    session.flush()
    return item


_INSERT_MESSAGE = insert(Message)  # built once; values come as parameters
_INSERT_OUTBOX = insert(OutboxItem)


def enqueue_all(
    session: Session,
    items: Sequence[Tuple[str, Dict[str, Any]]],
    *,
    channel: str,
    recipient: str,
    source: str,
    sender: str = "bot",
    conversation_id: Optional[int] = None,
    purpose: Purpose = Purpose.answer,
) -> List[str]:
    """:func:`enqueue` for several ``(key, payload)`` items to one recipient, in order.

    The same rows as calling :func:`enqueue` for each item (idempotent on the key, logged in
    ``messages``), written with plain INSERTs: one look-up for all keys, one INSERT per logged
    message (its id comes back with it), one multi-row INSERT for the outbox items. The hot
    path of the bot's auto-sent replies. Returns the keys queued now (not queued before).
    """
    if not items:
        return []
    session.flush()  # pending ORM rows of the caller go first (ids in order)
    keys = [key for key, _ in items]
    existing = set(session.execute(
        select(OutboxItem.idempotency_key).where(OutboxItem.idempotency_key.in_(keys))
    ).scalars())
    now = utcnow()
    rows: List[Dict[str, Any]] = []
    for key, payload in items:
        if key in existing:
            continue
        existing.add(key)
        message_id = None
        if conversation_id is not None:
            message_id = session.execute(_INSERT_MESSAGE, {
                "conversation_id": conversation_id, "direction": Direction.outbound, "channel": channel,
                "sender": sender, "text": payload.get("text"), "payload": payload, "status": "queued",
                "attempts": 0, "created_at": now, "purpose": purpose,
            }).inserted_primary_key[0]
        rows.append({
            "idempotency_key": key, "conversation_id": conversation_id, "message_id": message_id,
            "channel": channel, "recipient": recipient, "payload": payload, "source": source,
            "status": OutboxStatus.pending, "attempts": 0, "next_attempt_at": now, "created_at": now,
            "purpose": purpose,
        })
    if rows:
        session.execute(_INSERT_OUTBOX, rows)
        emit(session, OutboxQueued(channel))
    return [row["idempotency_key"] for row in rows]
