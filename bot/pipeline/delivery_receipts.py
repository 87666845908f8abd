"""Delivery receipts: the platform's word on what we sent (WhatsApp statuses, Messenger
delivery and read receipts), on the outbox item and its logged message.

A state only moves on: sent → delivered → read; ``failed`` (the platform could not deliver
what it had accepted, e.g. WhatsApp's 131047 outside the window) is final and keeps its
error. Receipts for messages we do not know (sent by another tool on the same number) change
nothing. Idempotent: a receipt delivered twice moves nothing the second time.
"""
from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.store.models import Direction, Message, OutboxItem, OutboxStatus, utcnow
from connectors.base import DELIVERY_STATES, DeliveryUpdate

logger = logging.getLogger(__name__)

_RANK = {"sent": 1, "delivered": 2, "read": 3}


def moves(current: "str | None", new: str) -> bool:
    """Whether a receipt ``new`` moves a message now in ``current`` on."""
    if current == "failed":
        return False
    if new == "failed":
        return current != "read"
    return _RANK[new] > _RANK.get(current or "", 0)


def record_delivery(session: Session, update: DeliveryUpdate) -> int:
    """Apply ``update``; the number of outbox items it moved."""
    if update.status not in DELIVERY_STATES:
        raise ValueError(f"unknown delivery status {update.status!r}")
    query = (select(OutboxItem).where(OutboxItem.channel == update.channel,
                                      OutboxItem.status == OutboxStatus.sent))
    if update.channel_message_id is not None:
        query = query.where(OutboxItem.channel_message_id == update.channel_message_id)
    elif update.recipient is not None and update.watermark is not None:
        query = query.where(OutboxItem.recipient == update.recipient, OutboxItem.sent_at <= update.watermark)
    else:
        return 0
    moved = 0
    at = update.at or utcnow()
    for item in session.execute(query.order_by(OutboxItem.id)).scalars():
        if not moves(item.delivery_status, update.status):
            continue
        item.delivery_status, item.delivery_updated_at = update.status, at
        if update.error:
            item.delivery_error = update.error[:2000]
        if item.message_id is not None:
            message = session.get(Message, item.message_id)
            if message is not None and message.direction == Direction.outbound:
                message.status = update.status
                if update.error:
                    message.last_error = update.error[:2000]
        moved += 1
    if update.status == "failed" and moved:
        logger.warning("%s: message %s was not delivered: %s", update.channel, update.channel_message_id,
                       update.error)
    return moved
