"""The outbox: every outbound message is committed here before any delivery attempt."""
from __future__ import annotations

import datetime as dt
from typing import Any, Dict, Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.store.models import Direction, Message, OutboxItem, OutboxStatus, utcnow


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
) -> OutboxItem:
    """Queue ``payload`` (``{"text": ..., "buttons": [...]}``) for ``recipient`` on ``channel``.

    Idempotent on ``key``: queuing the same key twice returns the first item, so a retried
    unit of work never sends twice. The outbound message is logged in ``messages`` too
    (status follows delivery). Runs in the caller's transaction.
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
    )
    session.add(item)
    session.flush()
    return item
