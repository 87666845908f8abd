"""The outbox dispatcher: delivers committed outbound messages through their channel.

Per recipient, messages go out in order (an item waits while an older one for the same
recipient is pending). Transient failures are retried with exponential backoff; a channel's
``retry_after`` is honoured and pauses that channel; each channel has its own rate limit;
permanent failures stop retrying, and an unreachable recipient (blocked the bot) is marked.

Right before each send the item is checked again (:func:`confirm_send`): still ours, still
pending, and its customer not erased. A GDPR erase cancels pending items in its own transaction,
so an item claimed just before the erase is dropped here rather than delivered; one queued after
the erase by work already under way is cancelled here. Only a send already on its way when the
erase commits cannot be stopped.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Set

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, aliased

from bot import audit, gdpr
from bot.rate_limit import TokenBucket
from bot.store.database import Store
from bot.store.models import (
    BroadcastRecipient,
    ChannelIdentity,
    Conversation,
    Customer,
    Message,
    OutboxItem,
    OutboxStatus,
    utcnow,
)
from connectors.base import Connector, DeliveryError

logger = logging.getLogger(__name__)

LEASE_SECONDS = 60
MAX_BACKOFF_SECONDS = 300.0


@dataclass(frozen=True)
class Delivery:
    id: int
    channel: str
    recipient: str
    payload: Dict[str, Any]
    key: str
    attempts: int
    lease_until: Optional[dt.datetime] = None


class Dispatcher:
    """Sends due outbox items; several dispatchers (replicas) may run side by side."""

    def __init__(
        self,
        store: Store,
        connectors: Mapping[str, Connector],
        max_attempts: int = 8,
        batch: int = 100,
        owner: Optional[str] = None,
    ) -> None:
        self.store = store
        self.connectors = connectors
        self.max_attempts = max_attempts
        self.batch = batch
        self.owner = owner or f"dispatcher-{uuid.uuid4().hex[:12]}"
        # Small bursts (a tenth of a second's worth): a full second's burst arrives at the
        # platform as dozens of simultaneous requests whose jitter trips its per-second limit.
        self.buckets = {
            name: TokenBucket(c.capabilities.rate_limit_per_second,
                              burst=max(1.0, c.capabilities.rate_limit_per_second / 10))
            for name, c in connectors.items()
        }
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Something was queued: look now."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled (first taking back what this dispatcher held before a restart)."""
        try:
            released = await self.store.run(release_own_leases, self.owner)
            if released:
                logger.info("dispatcher %s: took back %d items it held before a restart", self.owner, released)
        except Exception:
            logger.exception("dispatcher: releasing old leases failed; they expire on their own")
        while True:
            try:
                deliveries = await self.store.run(claim_due, list(self.connectors), self.batch, self.owner)
            except Exception:
                logger.exception("dispatcher: claiming failed; retrying")
                deliveries = []
                await asyncio.sleep(1.0)
            if deliveries:
                await self.deliver_all(deliveries)
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=0.5)
            except asyncio.TimeoutError:
                pass

    async def deliver_all(self, deliveries: List[Delivery]) -> None:
        """Send a claimed batch: recipients in parallel, each recipient's items in order."""
        by_recipient: Dict[tuple, List[Delivery]] = defaultdict(list)
        for delivery in deliveries:
            by_recipient[(delivery.channel, delivery.recipient)].append(delivery)
        await asyncio.gather(*(self._deliver_in_order(items) for items in by_recipient.values()))

    async def _deliver_in_order(self, items: List[Delivery]) -> None:
        for index, delivery in enumerate(items):
            if not await self.deliver(delivery):
                # Keep the order: later items for this recipient wait for the failed one.
                await self.store.run(unclaim, [d.id for d in items[index + 1:]])
                return

    async def deliver(self, delivery: Delivery) -> bool:
        """Send one item and record the outcome; True when it was delivered."""
        connector = self.connectors[delivery.channel]
        bucket = self.buckets[delivery.channel]
        slot = await bucket.acquire()
        # At send time (after any wait for the rate limit or a retry_after): still ours, still to
        # send, and not to an erased customer?
        if not await self.store.run(confirm_send, delivery):
            return False
        try:
            try:
                result = await connector.send(delivery.recipient, delivery.payload, delivery.key)
            finally:
                bucket.sent(slot)  # the rate window counts this send from when it finished
        except DeliveryError as error:
            if error.retry_after is not None:
                bucket.pause(error.retry_after)
            await self.store.run(record_failure, delivery, error, self.max_attempts)
            return False
        except Exception as exc:  # a connector bug must not stop the dispatcher
            logger.exception("dispatcher: %s connector failed", delivery.channel)
            await self.store.run(record_failure, delivery, DeliveryError(repr(exc)), self.max_attempts)
            return False
        await self.store.run(record_success, delivery.id, result.channel_message_id)
        return True


# ---------------------------------------------------------------- units of work


def claim_due(session: Session, channels: List[str], limit: int, owner: Optional[str] = None) -> List[Delivery]:
    """Lease due items whose recipient has no older pending item (to ``owner``)."""
    if not channels:
        return []
    now = utcnow()
    older = aliased(OutboxItem)
    blocked = (
        select(older.id)
        .where(
            older.channel == OutboxItem.channel,
            older.recipient == OutboxItem.recipient,
            older.status == OutboxStatus.pending,
            older.id < OutboxItem.id,
        )
        .exists()
    )
    free = or_(OutboxItem.lease_until.is_(None), OutboxItem.lease_until < now)
    rows = session.execute(
        select(OutboxItem)
        .where(
            OutboxItem.status == OutboxStatus.pending,
            OutboxItem.next_attempt_at <= now,
            OutboxItem.channel.in_(channels),
            free,
            ~blocked,
        )
        .order_by(OutboxItem.id)
        .limit(limit)
        # PostgreSQL: items another replica is claiming right now are skipped, not waited for
        .with_for_update(skip_locked=True, of=OutboxItem)
    ).scalars().all()
    until = now + dt.timedelta(seconds=LEASE_SECONDS)
    claimed = []
    for item in rows:
        result = session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == item.id, OutboxItem.status == OutboxStatus.pending, free)
            .values(lease_until=until, lease_owner=owner)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            claimed.append(Delivery(item.id, item.channel, item.recipient, item.payload,
                                    item.idempotency_key, item.attempts, until))
    return claimed


def confirm_send(session: Session, delivery: Delivery) -> bool:
    """Whether to send ``delivery`` now: the item is still pending, still ours (the lease we
    claimed it with; renewed when half of it has passed) and its customer is not erased.

    An item whose customer was erased but which is still pending (queued after the erase by work
    already under way) is cancelled here as the erase cancels one, and audited.
    """
    row = session.execute(
        select(OutboxItem.status, OutboxItem.lease_until, OutboxItem.conversation_id, OutboxItem.source,
               Conversation.customer_id, Customer.flags)
        .outerjoin(Conversation, Conversation.id == OutboxItem.conversation_id)
        .outerjoin(Customer, Customer.id == Conversation.customer_id)
        .where(OutboxItem.id == delivery.id)
    ).first()
    if row is None or row.status != OutboxStatus.pending:
        logger.info("dispatcher: outbox %s is no longer pending (cancelled by an erase?); not sending it",
                    delivery.id)
        return False
    if delivery.lease_until is not None and row.lease_until != delivery.lease_until:
        logger.info("dispatcher: outbox %s was taken over; not sending it", delivery.id)
        return False
    customer_id, flags = row.customer_id, row.flags
    if row.conversation_id is None and row.source == "broadcast":  # to a customer without a conversation
        recipient = session.execute(
            select(BroadcastRecipient.customer_id, Customer.flags)
            .join(Customer, Customer.id == BroadcastRecipient.customer_id)
            .where(BroadcastRecipient.outbox_id == delivery.id).limit(1)
        ).first()
        if recipient is not None:
            customer_id, flags = recipient.customer_id, recipient.flags
    if gdpr.is_erased(flags):
        item = session.get(OutboxItem, delivery.id)
        if gdpr.erase_outbox_item(session, item):
            audit.record(session, None, gdpr.OUTBOX_AUDIT, "customer", customer_id, {"outbox_cancelled": [item.id]})
        logger.info("dispatcher: outbox %s is for an erased customer; cancelled, not sent", delivery.id)
        return False
    if delivery.lease_until is not None and utcnow() > delivery.lease_until - dt.timedelta(seconds=LEASE_SECONDS / 2):
        # We waited long (rate limit, retry_after): keep the item ours while we send it.
        return renew_lease(session, delivery)
    return True


def renew_lease(session: Session, delivery: Delivery) -> bool:
    """Extend our lease if it is still ours (unchanged since we claimed it)."""
    result = session.execute(
        update(OutboxItem)
        .where(OutboxItem.id == delivery.id, OutboxItem.status == OutboxStatus.pending,
               OutboxItem.lease_until == delivery.lease_until)
        .values(lease_until=utcnow() + dt.timedelta(seconds=LEASE_SECONDS))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def release_own_leases(session: Session, owner: str) -> int:
    """Items leased by ``owner`` in an earlier life (killed before it could finish): free them now.

    The owner name is stable per replica (host and port), so a restarted service resumes at
    once instead of waiting for its old leases to expire; other replicas' leases are untouched.
    """
    result = session.execute(
        update(OutboxItem)
        .where(OutboxItem.lease_owner == owner, OutboxItem.status == OutboxStatus.pending,
               OutboxItem.lease_until.isnot(None))
        .values(lease_until=None, lease_owner=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def unclaim(session: Session, ids: List[int]) -> None:
    if ids:
        session.execute(
            update(OutboxItem).where(OutboxItem.id.in_(ids)).values(lease_until=None)
            .execution_options(synchronize_session=False)
        )


def record_success(session: Session, item_id: int, channel_message_id: Optional[str]) -> None:
    item = session.get(OutboxItem, item_id)
    now = utcnow()
    if item.last_error == gdpr.CANCELLED:
        # The customer was erased while this send was on its way: it did go out (recorded as
        # such), but nothing that identifies it (the platform's message id) is kept.
        item.status, item.sent_at, item.lease_until = OutboxStatus.sent, now, None
        item.attempts += 1
        item.last_error = gdpr.SENT_WHILE_ERASED
        if item.message_id is not None:
            session.get(Message, item.message_id).status = "sent"
        logger.warning("dispatcher: outbox %s was delivered while its customer was being erased", item.id)
        return
    item.status = OutboxStatus.sent
    item.sent_at = now
    item.lease_until = None
    item.attempts += 1
    item.channel_message_id = channel_message_id
    if item.message_id is not None:
        message = session.get(Message, item.message_id)
        message.status = "sent"
        message.channel_message_id = channel_message_id
        message.processed_at = now


def record_failure(session: Session, delivery: Delivery, error: DeliveryError, max_attempts: int) -> None:
    item = session.get(OutboxItem, delivery.id)
    now = utcnow()
    if item.last_error == gdpr.CANCELLED:  # erased meanwhile: it stays cancelled
        return
    item.lease_until = None
    item.last_error = error.reason[:2000]
    if error.retry_after is not None:
        # The channel asked us to wait: not the message's fault, no attempt counted.
        item.next_attempt_at = now + dt.timedelta(seconds=error.retry_after)
        return
    item.attempts += 1
    if error.permanent or item.attempts >= max_attempts:
        item.status = OutboxStatus.failed
        if item.message_id is not None:
            session.get(Message, item.message_id).status = "failed"
        if error.unreachable:
            session.execute(
                update(ChannelIdentity)
                .where(ChannelIdentity.channel == item.channel, ChannelIdentity.external_id == item.recipient)
                .values(reachable=False)
                .execution_options(synchronize_session=False)
            )
            # Nothing more will reach this recipient: stop the rest of their queue too.
            stopped = select(OutboxItem.message_id).where(
                OutboxItem.channel == item.channel, OutboxItem.recipient == item.recipient,
                OutboxItem.status == OutboxStatus.pending, OutboxItem.message_id.isnot(None))
            session.execute(
                update(Message).where(Message.id.in_(stopped)).values(status="failed")
                .execution_options(synchronize_session=False)
            )
            session.execute(
                update(OutboxItem)
                .where(OutboxItem.channel == item.channel, OutboxItem.recipient == item.recipient,
                       OutboxItem.status == OutboxStatus.pending)
                .values(status=OutboxStatus.failed, last_error="recipient unreachable")
                .execution_options(synchronize_session=False)
            )
        logger.warning("dispatcher: outbox %s failed for good: %s", item.id, error.reason)
        return
    backoff = min(MAX_BACKOFF_SECONDS, 2.0 ** item.attempts) * random.uniform(0.8, 1.2)
    item.next_attempt_at = now + dt.timedelta(seconds=backoff)
