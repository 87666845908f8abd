"""Delivery receipts: the platform's word on what we sent (WhatsApp statuses, Messenger
delivery and read receipts), on the outbox item and its logged message.

A state only moves on: sent → delivered → read; ``failed`` (the platform could not deliver
what it had accepted, e.g. WhatsApp's 131047 outside the window) is final and keeps its
error. Receipts for messages we do not know (sent by another tool on the same number) change
nothing. Idempotent: a receipt delivered twice moves nothing the second time.
"""
from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.store.models import Direction, Message, OutboxItem, OutboxStatus, utcnow
from connectors.base import DELIVERY_STATES, DeliveryUpdate

logger = logging.getLogger(__name__)

_RANK = {"sent": 1, "delivered": 2, "read": 3}
FINAL = ("read", "failed")  # nothing moves a message on from these
WATERMARK_MARGIN = dt.timedelta(seconds=5)


def moves(current: "str | None", new: str) -> bool:
    """Whether a receipt ``new`` moves a message now in ``current`` on."""
    if current == "failed":
        return False
    if new == "failed":
        return current != "read"
    return _RANK[new] > _RANK.get(current or "", 0)


def record_delivery(session: Session, update: DeliveryUpdate) -> int:
    """Apply ``update``; the number of outbox items it moved.

    The rows are locked (PostgreSQL) so that two replicas applying "delivered" and "read" of
    one message at once cannot move it back. A read watermark is the platform's time of the
    last message read, a little before our ``sent_at`` of it (we stamp it when the API
    answered): :data:`WATERMARK_MARGIN` allows for that.
    """
    if update.status not in DELIVERY_STATES:
        raise ValueError(f"unknown delivery status {update.status!r}")
    query = (select(OutboxItem).where(
        OutboxItem.channel == update.channel, OutboxItem.status == OutboxStatus.sent,
        or_(OutboxItem.delivery_status.is_(None), OutboxItem.delivery_status.notin_(FINAL))))
    if update.channel_message_id is not None:
        query = query.where(OutboxItem.channel_message_id == update.channel_message_id)
    elif update.recipient is not None and update.watermark is not None:
        query = query.where(OutboxItem.recipient == update.recipient,
                            OutboxItem.sent_at <= update.watermark + WATERMARK_MARGIN)
    else:
        return 0
    moved = 0
    at = update.at or utcnow()
    for item in session.execute(query.order_by(OutboxItem.id).with_for_update()).scalars():
        if not moves(item.delivery_status, update.status):
            continue
        item.delivery_status, item.delivery_updated_at = update.status, at
        if update.error:
            item.delivery_error = update.error[:2000]
        if update.needs_template:  # accepted, then refused: the window had closed after all
            item.status = OutboxStatus.needs_template
            item.last_error = f"needs a template: the platform refused it outside the window ({update.error})"[:2000]
        if item.message_id is not None:
            message = session.get(Message, item.message_id)
            if message is not None and message.direction == Direction.outbound:
                message.status = OutboxStatus.needs_template.value if update.needs_template else update.status
                if update.error:
                    message.last_error = (item.last_error if update.needs_template else update.error)[:2000]
        moved += 1
    if update.status == "failed" and moved:
        logger.warning("%s: message %s was not delivered: %s", update.channel, update.channel_message_id,
                       update.error)
    return moved
