"""Conversation leases: one worker at a time per conversation, across replicas.

A worker (or the tracker sync) takes a time-limited lease on a conversation before touching
it; a live holder renews it (its heartbeat), so a crashed one's conversations are free again
after :data:`LEASE_SECONDS`. The lease owner is the fencing token every unit of work checks.
"""
from __future__ import annotations

import datetime as dt
from typing import List, Optional

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from bot.store.models import Conversation, Direction, InboundStatus, Message, utcnow

LEASE_SECONDS = 15  # a crashed worker's conversations are free again after this
CLAIM_SCAN_FACTOR = 8  # a claim for n conversations looks at the first 8n waiting messages


def claim_conversations(session: Session, owner: str, limit: int) -> List[int]:
    """Lease up to ``limit`` conversations with unprocessed messages (oldest message first).

    Walks the waiting messages in arrival order (index ``ix_messages_status_order``) and takes
    the first free conversations it meets, so a claim costs the same with a backlog of ten
    thousand messages as with ten (a conversation's first waiting message comes first).
    """
    now = utcnow()
    free = or_(Conversation.lease_until.is_(None), Conversation.lease_until < now)
    waiting = session.execute(
        select(Message.conversation_id)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Message.status == InboundStatus.received.value, Message.direction == Direction.inbound, free)
        .order_by(Message.id)
        .limit(limit * CLAIM_SCAN_FACTOR)
        # PostgreSQL: rows another replica is claiming right now are skipped, not waited for
        .with_for_update(skip_locked=True, of=Conversation)
    ).scalars().all()
    claimed = []
    for conversation_id in list(dict.fromkeys(waiting))[:limit]:
        if lease_conversation(session, conversation_id, owner, now):
            claimed.append(conversation_id)
    return claimed


def lease_conversation(session: Session, conversation_id: int, owner: str,
                       now: Optional[dt.datetime] = None) -> bool:
    """Take the conversation's lease for ``owner`` if nobody holds it (atomic)."""
    now = now or utcnow()
    result = session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id,
               or_(Conversation.lease_until.is_(None), Conversation.lease_until < now))
        .values(lease_owner=owner, lease_until=now + dt.timedelta(seconds=LEASE_SECONDS))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def renew_leases(session: Session, owner: str, conversation_ids: List[int]) -> int:
    """Extend ``owner``'s leases on the conversations it is working on (its heartbeat)."""
    result = session.execute(
        update(Conversation)
        .where(Conversation.id.in_(conversation_ids), Conversation.lease_owner == owner)
        .values(lease_until=utcnow() + dt.timedelta(seconds=LEASE_SECONDS))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def release(session: Session, conversation_id: int, owner: str, delay_seconds: float) -> None:
    """Give the conversation back (after ``delay_seconds``, to back off after a failure)."""
    session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id, Conversation.lease_owner == owner)
        .values(
            lease_owner=None,
            lease_until=utcnow() + dt.timedelta(seconds=delay_seconds) if delay_seconds else None,
        )
        .execution_options(synchronize_session=False)
    )
