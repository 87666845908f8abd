"""The outbox dispatcher: delivers committed outbound messages through their channel.

Per recipient, messages go out in order (an item waits while an older one for the same
recipient is pending). Transient failures are retried with exponential backoff; a channel's
``retry_after`` is honoured and pauses that channel; each channel has its own rate limit;
permanent failures stop retrying, and an unreachable recipient (blocked the bot) is marked.

Replicas share the outbox through leases: a dispatcher claims due items for
:data:`LEASE_SECONDS` (:func:`claim_due`), and while it delivers a batch its heartbeat extends the
leases of the items it still holds every :data:`HEARTBEAT_SECONDS` (one UPDATE for the batch,
:func:`renew_leases`), so a slow platform call, a wait for the rate limit or a ``retry_after``
pause never lets a lease lapse while the item is still to be sent. A killed (kill -9) replica's
items are free again within :data:`LEASE_SECONDS`.

An item's lease is identified by its ``lease_owner`` and ``lease_until`` (a fencing token); each
renewal moves ``lease_until`` on, and the token the dispatcher holds (:class:`BatchLeases`)
follows it. Right before each send the item is checked again (:func:`confirm_send`): still ours
(the row still has our token), still pending, and its customer not erased. An item the heartbeat
could not extend (taken over by another replica after a lapse, released, or cancelled by an erase)
is lost and not sent. A GDPR erase cancels pending items in its own transaction,
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
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, AsyncIterator, Dict, FrozenSet, Iterable, List, Mapping, Optional, Set, Tuple

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.expression import ColumnElement

from bot.store import audit
from bot.privacy import gdpr
from bot.pipeline import messaging_window
from bot.pipeline.rate_limit import TokenBucket
from bot.store.database import Store
from bot.store.models import (
    BroadcastRecipient,
    Case,
    ChannelIdentity,
    Conversation,
    Customer,
    Direction,
    Message,
    OutboxItem,
    OutboxStatus,
    Visibility,
    utcnow,
)
from connectors.base import Connector, DeliveryError, SendContext

logger = logging.getLogger(__name__)

LEASE_SECONDS = 15  # a killed dispatcher's items are free again after this (as the worker's)
HEARTBEAT_SECONDS = 5.0  # a live dispatcher renews the leases of the batch it is delivering this often
MAX_BACKOFF_SECONDS = 300.0


@dataclass(frozen=True)
class Delivery:
    """A claimed item: what to send, and the lease it was claimed with (``lease_owner`` and
    ``lease_until``, the fencing token; ``lease_until`` None: not leased, nothing to check)."""

    id: int
    channel: str
    recipient: str
    payload: Dict[str, Any]
    key: str
    attempts: int
    lease_until: Optional[dt.datetime] = None
    owner: Optional[str] = None
    # Filled by confirm_send(context=True), for channels with a messaging window or their own
    # deliver(): what the message is for, and when the customer last wrote on this channel.
    context: SendContext = SendContext()
    last_customer_message: Optional[dt.datetime] = None


Lease = Tuple[Optional[str], dt.datetime]  # (lease_owner, lease_until) of an item we hold


class BatchLeases:
    """The leases a dispatcher holds on the items of the batch it is delivering.

    Mutable, one per batch: the heartbeat moves an item's ``lease_until`` on when it extended it
    (the fencing token :func:`confirm_send` compares follows the renewals) and forgets the items
    it could not extend (lost to us: not sent). Finished items (sent, failed, given back) are
    dropped and no longer renewed.

    A renewal and a confirmation of the same item never overlap: the heartbeat leaves alone the
    items being confirmed (:func:`confirm_send` renews a lease running short itself), and a
    confirmation waits for a renewal under way that includes its item. So the token compared is
    always the one in the database while the item is still ours.
    """

    def __init__(self, deliveries: Iterable[Delivery]) -> None:
        self._held: Dict[int, Lease] = {
            d.id: (d.owner, d.lease_until) for d in deliveries if d.lease_until is not None}
        self._confirming: Set[int] = set()
        self._renewing: FrozenSet[int] = frozenset()
        self._renewed = asyncio.Event()
        self._renewed.set()

    def finished(self, ids: Iterable[int]) -> None:
        """Sent, failed, given back or skipped: no more renewals."""
        for item_id in ids:
            self._held.pop(item_id, None)

    @asynccontextmanager
    async def confirming(self, delivery: Delivery) -> AsyncIterator[Optional[Delivery]]:
        """While a send is confirmed: yields ``delivery`` with its current lease (None: lost to
        us); the heartbeat leaves the item alone meanwhile."""
        if delivery.lease_until is None:  # not leased: nothing to follow
            yield delivery
            return
        while delivery.id in self._renewing:
            await self._renewed.wait()
        lease = self._held.get(delivery.id)
        if lease is None:
            yield None
            return
        self._confirming.add(delivery.id)
        try:
            yield replace(delivery, owner=lease[0], lease_until=lease[1])
        finally:
            self._confirming.discard(delivery.id)

    def confirmed(self, delivery: Delivery) -> None:
        """:func:`confirm_send` passed ``delivery`` (its lease perhaps renewed there)."""
        if delivery.id in self._held and delivery.lease_until is not None:
            self._held[delivery.id] = (delivery.owner, delivery.lease_until)

    def start_renewal(self) -> Dict[int, Lease]:
        """The leases the heartbeat renews now (not those being confirmed); until
        :meth:`end_renewal`, confirmations of these items wait."""
        leases = {i: lease for i, lease in self._held.items() if i not in self._confirming}
        if leases:
            self._renewing = frozenset(leases)
            self._renewed.clear()
        return leases

    def renewed(self, leases: Dict[int, Lease], until: dt.datetime, extended: Iterable[int]) -> None:
        """The heartbeat extended ``extended`` (of ``leases``) to ``until``; the others are lost."""
        kept = set(extended)
        for item_id, (owner, _) in leases.items():
            if item_id not in self._held:
                continue  # finished meanwhile
            if item_id in kept:
                self._held[item_id] = (owner, until)
            else:
                logger.info("dispatcher: lost the lease on outbox %s (taken over, released or cancelled)",
                            item_id)
                del self._held[item_id]

    def end_renewal(self) -> None:
        """The renewal is over (done or failed): confirmations go on."""
        self._renewing = frozenset()
        self._renewed.set()


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
                try:
                    await self.deliver_all(deliveries)
                except Exception:  # e.g. the store failed while recording: the leases lapse, items retry
                    logger.exception("dispatcher: delivering a batch failed; going on")
                    await asyncio.sleep(1.0)
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=0.5)
            except asyncio.TimeoutError:
                pass

    async def deliver_all(self, deliveries: List[Delivery]) -> None:
        """Send a claimed batch: recipients in parallel, each recipient's items in order.

        A heartbeat keeps the batch's leases while it is delivered; it stops with the batch
        (also when the batch fails or is cancelled).
        """
        by_recipient: Dict[tuple, List[Delivery]] = defaultdict(list)
        for delivery in deliveries:
            by_recipient[(delivery.channel, delivery.recipient)].append(delivery)
        leases = BatchLeases(deliveries)
        heartbeat = asyncio.create_task(self._heartbeat(leases), name=f"{self.owner} heartbeat")
        try:
            # Every recipient runs to its end (under the heartbeat) even when another fails.
            outcomes = await asyncio.gather(
                *(self._deliver_in_order(items, leases) for items in by_recipient.values()),
                return_exceptions=True)
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _heartbeat(self, leases: BatchLeases) -> None:
        """Extend the leases of the batch's items still ours, every HEARTBEAT_SECONDS."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            held = leases.start_renewal()
            if not held:
                continue
            renewal = asyncio.ensure_future(self.store.run(renew_leases, held))
            try:
                # A renewal under way when the batch ends finishes first (its UPDATE runs in a
                # thread either way): no lease is extended after deliver_all has returned.
                try:
                    until, extended = await asyncio.shield(renewal)
                except asyncio.CancelledError:
                    await asyncio.gather(renewal, return_exceptions=True)
                    raise
                leases.renewed(held, until, extended)
            except Exception:
                logger.exception("dispatcher: renewing leases failed; retrying")
            finally:
                leases.end_renewal()

    async def _deliver_in_order(self, items: List[Delivery], leases: BatchLeases) -> None:
        for index, delivery in enumerate(items):
            try:
                delivered = await self.deliver(delivery, leases)
            finally:
                leases.finished([delivery.id])
            if not delivered:
                # Keep the order: later items for this recipient wait for the failed one.
                rest = [d.id for d in items[index + 1:]]
                leases.finished(rest)
                await self.store.run(unclaim, rest)
                return

    async def deliver(self, delivery: Delivery, leases: BatchLeases) -> bool:
        """Send one item and record the outcome; True when it was delivered.

        ``leases``: the batch's leases, kept by its heartbeat (the lease to check is the current
        one, not the one the item was claimed with).
        """
        connector = self.connectors[delivery.channel]
        bucket = self.buckets[delivery.channel]
        slot = await bucket.acquire()
        # At send time (after any wait for the rate limit or a retry_after): still ours, still to
        # send, and not to an erased customer?
        async with leases.confirming(delivery) as current:
            if current is None:
                logger.info("dispatcher: outbox %s is no longer ours (its lease was lost); not sending it",
                            delivery.id)
                return False
            confirmed = await self.store.run(confirm_send, current, needs_context(connector))
            if confirmed is not None:
                leases.confirmed(confirmed)
        if confirmed is None:
            return False
        delivery = confirmed
        decision = messaging_window.decide(
            connector.capabilities.window, delivery.payload, delivery.context, delivery.last_customer_message,
            connector.template_for(delivery.context.purpose), utcnow())
        if decision.action == messaging_window.HOLD:
            bucket.sent(slot)
            await self.store.run(record_held, delivery.id, decision.reason)
            return True  # final: the recipient's later items go on (each decided on its own)
        try:
            try:
                result = await connector.deliver(delivery.recipient, decision.payload, delivery.key, delivery.context)
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
        sent_as = None if decision.action == messaging_window.SEND else {"action": decision.action,
                                                                         "reason": decision.reason}
        if decision.action == messaging_window.TEMPLATE:
            sent_as["template"] = decision.payload["template"]["name"]
        await self.store.run(record_success, delivery.id, result.channel_message_id, sent_as, result.recipient_id)
        return True


def needs_context(connector: Connector) -> bool:
    """Whether sends on ``connector`` need :attr:`Delivery.context` (a few more reads each)."""
    return connector.capabilities.window is not None or type(connector).deliver is not Connector.deliver


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
                                    item.idempotency_key, item.attempts, until, owner))
    return claimed


def confirm_send(session: Session, delivery: Delivery, context: bool = False) -> Optional[Delivery]:
    """``delivery`` when it is to be sent now, else None: the item is still pending, still ours
    (the row still has the lease ``delivery`` carries, the fencing token) and its customer is
    not erased. ``context``: fill in :attr:`Delivery.context` and the customer's last message.

    A lease with less than half of it left is renewed first (we waited long and the heartbeat
    could not keep it), and the delivery returned carries the new one.

    An item whose customer was erased but which is still pending (queued after the erase by work
    already under way) is cancelled here as the erase cancels one, and audited.
    """
    row = session.execute(
        select(OutboxItem.status, OutboxItem.lease_until, OutboxItem.lease_owner, OutboxItem.conversation_id,
               OutboxItem.source, Conversation.customer_id, Customer.flags)
        .outerjoin(Conversation, Conversation.id == OutboxItem.conversation_id)
        .outerjoin(Customer, Customer.id == Conversation.customer_id)
        .where(OutboxItem.id == delivery.id)
    ).first()
    if row is None or row.status != OutboxStatus.pending:
        logger.info("dispatcher: outbox %s is no longer pending (cancelled by an erase?); not sending it",
                    delivery.id)
        return None
    if delivery.lease_until is not None and (row.lease_until, row.lease_owner) != (delivery.lease_until,
                                                                                   delivery.owner):
        logger.info("dispatcher: outbox %s was taken over; not sending it", delivery.id)
        return None
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
        return None
    if context:
        delivery = with_context(session, delivery)
    if delivery.lease_until is not None and utcnow() > delivery.lease_until - dt.timedelta(seconds=LEASE_SECONDS / 2):
        # We waited long and the heartbeat did not keep up: keep the item ours while we send it.
        until = renew_lease(session, delivery)
        if until is None:
            logger.info("dispatcher: outbox %s was taken over; not sending it", delivery.id)
            return None
        return replace(delivery, lease_until=until)
    return delivery


def with_context(session: Session, delivery: Delivery) -> Delivery:
    """``delivery`` with its :class:`SendContext` and the customer's last message on the channel.

    A public conversation's reply goes under the customer's latest comment (its ``reply_to``
    from the connector, else the comment itself). The window counts the customer's private
    messages to this address only: a comment does not open a DM window.
    """
    row = session.execute(
        select(OutboxItem.purpose, OutboxItem.source, Conversation.id.label("conversation_id"),
               Conversation.visibility, Conversation.language, Customer.language.label("customer_language"),
               Customer.display_name, Message.sender)
        .outerjoin(Message, Message.id == OutboxItem.message_id)
        .outerjoin(Conversation, Conversation.id == OutboxItem.conversation_id)
        .outerjoin(Customer, Customer.id == Conversation.customer_id)
        .where(OutboxItem.id == delivery.id)
    ).one()
    visibility = row.visibility or Visibility.private
    reply_to = delivery.payload.get("reply_to")  # the comment the agent answered, fixed when queued
    if visibility == Visibility.public and not reply_to:
        reply_to = latest_comment_target(session, row.conversation_id)
    last = session.execute(
        select(Message.created_at)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
        .where(ChannelIdentity.channel == delivery.channel, ChannelIdentity.external_id == delivery.recipient,
               Message.direction == Direction.inbound, Conversation.visibility == Visibility.private)
        .order_by(Message.id.desc()).limit(1)
    ).scalar()
    purpose = row.purpose.value if row.purpose is not None else (
        "broadcast" if row.source == "broadcast" else "answer")
    typed = row.source == "agent" or (row.sender or "").startswith("agent:")
    context = SendContext(purpose=purpose, source=row.source, typed_by_person=typed,
                          visibility=visibility.value, reply_to=reply_to,
                          language=row.language or row.customer_language, customer_name=row.display_name)
    return replace(delivery, context=context, last_customer_message=last)


def comment_target(payload: Optional[Dict[str, Any]], channel_message_id: Optional[str]) -> Optional[str]:
    """The comment a public reply to this stored comment goes under (the connector's
    ``reply_to``: Instagram replies under the top-level comment)."""
    metadata = (payload or {}).get("metadata") or {}
    return metadata.get("reply_to") or metadata.get("comment_id") or channel_message_id


def latest_comment_target(session: Session, conversation_id: Optional[int]) -> Optional[str]:
    """Where the bot's public reply goes: under the customer's latest comment that is still
    there (not an edit or a removal)."""
    for channel_message_id, payload in session.execute(
            select(Message.channel_message_id, Message.payload)
            .where(Message.conversation_id == conversation_id, Message.direction == Direction.inbound)
            .order_by(Message.id.desc()).limit(20)).all():
        if (payload or {}).get("kind") not in ("edit", "deleted"):
            return comment_target(payload, channel_message_id)
    return None


def _ours(leases: Mapping[int, Lease]) -> ColumnElement:
    """SQL: the item still has the lease we hold on it (its owner and ``lease_until``)."""
    by_lease: Dict[Lease, List[int]] = defaultdict(list)
    for item_id, lease in leases.items():
        by_lease[lease].append(item_id)
    return or_(*(
        and_(OutboxItem.id.in_(ids),
             OutboxItem.lease_owner.is_(None) if owner is None else OutboxItem.lease_owner == owner,
             OutboxItem.lease_until == until)
        for (owner, until), ids in by_lease.items()
    ))


def renew_lease(session: Session, delivery: Delivery) -> Optional[dt.datetime]:
    """Extend our lease if it is still ours (unchanged since we last took or renewed it); the
    new ``lease_until``, or None when it is not ours any more."""
    until, extended = renew_leases(session, {delivery.id: (delivery.owner, delivery.lease_until)})
    return until if extended else None


def renew_leases(session: Session, leases: Mapping[int, Lease]) -> Tuple[dt.datetime, List[int]]:
    """The heartbeat: extend the leases still ours among ``leases`` (item id -> the lease we
    hold on it) in one UPDATE; returns the new ``lease_until`` and the items extended.

    An item whose lease changed (taken over after a lapse, released, unclaimed) or that is no
    longer pending (sent, failed, cancelled by an erase) is left alone: it is lost to us.
    """
    until = utcnow() + dt.timedelta(seconds=LEASE_SECONDS)
    if not leases:
        return until, []
    result = session.execute(
        update(OutboxItem)
        .where(OutboxItem.status == OutboxStatus.pending, _ours(leases))
        .values(lease_until=until)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == len(leases):
        return until, list(leases)
    # Some were not ours any more: which ones we did extend (nobody else writes our ``until``).
    extended = session.execute(
        select(OutboxItem.id)
        .where(OutboxItem.id.in_(list(leases)), OutboxItem.lease_until == until,
               OutboxItem.status == OutboxStatus.pending)
    ).scalars().all()
    return until, list(extended)


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


def record_success(session: Session, item_id: int, channel_message_id: Optional[str],
                   sent_as: Optional[Dict[str, Any]] = None, recipient_id: Optional[str] = None) -> None:
    """The item went out: ``sent_as`` says how when not as queued (a template, a message tag);
    ``recipient_id``: the platform's address of the recipient when it differs from ours (a
    private reply to a comment: the customer's DM address from now on)."""
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
    item.delivery_status, item.delivery_updated_at = "sent", now
    if item.message_id is not None:
        message = session.get(Message, item.message_id)
        message.status = "sent"
        message.channel_message_id = channel_message_id
        message.processed_at = now
        if sent_as is not None:
            message.payload = {**(message.payload or {}), "sent_as": sent_as}
    if recipient_id and recipient_id != item.recipient:
        adopt_recipient(session, item, recipient_id)


def adopt_recipient(session: Session, item: OutboxItem, recipient_id: str) -> None:
    """The platform answered a send to ``item.recipient`` (a comment's private reply) with the
    customer's own address: their identity takes it, so their DM answer lands in the same
    private conversation and customer.

    Already known under that address (they wrote to us before, or their answer arrived first):
    they are one person, so the customer of the comment joins the known one. The private
    conversation moves to the known identity, and the placeholder identity is removed. The
    conversations and cases of the comment's customer, and its identities, move too, so that one
    history holds the comment, the DM and what came before.
    """
    identity = session.execute(
        select(ChannelIdentity).where(ChannelIdentity.channel == item.channel,
                                      ChannelIdentity.external_id == item.recipient).with_for_update()
    ).scalar_one_or_none()
    if identity is None:
        return
    known = session.execute(
        select(ChannelIdentity).where(ChannelIdentity.channel == item.channel,
                                      ChannelIdentity.external_id == recipient_id).with_for_update()
    ).scalar_one_or_none()
    if known is None:
        try:
            with session.begin_nested():  # another replica may store that address right now
                identity.external_id = recipient_id
                session.flush()
        except IntegrityError:
            identity.external_id = item.recipient
            known = session.execute(
                select(ChannelIdentity).where(ChannelIdentity.channel == item.channel,
                                              ChannelIdentity.external_id == recipient_id)
            ).scalar_one()
    if known is not None:
        _join_customer(session, identity, known)
    session.execute(
        update(OutboxItem)
        .where(OutboxItem.channel == item.channel, OutboxItem.recipient == item.recipient,
               OutboxItem.status == OutboxStatus.pending)
        .values(recipient=recipient_id)
        .execution_options(synchronize_session=False)
    )
    logger.info("dispatcher: %s recipient %s is %s on the platform", item.channel, item.recipient, recipient_id)


def _join_customer(session: Session, placeholder: ChannelIdentity, known: ChannelIdentity) -> None:
    """The placeholder's conversations go to ``known``; the placeholder's customer (the
    commenter) joins ``known``'s customer with its identities, conversations and cases."""
    source, target = placeholder.customer_id, known.customer_id
    session.execute(update(Conversation).where(Conversation.identity_id == placeholder.id)
                    .values(identity_id=known.id).execution_options(synchronize_session="fetch"))
    if source != target:
        session.execute(update(ChannelIdentity).where(ChannelIdentity.customer_id == source)
                        .values(customer_id=target).execution_options(synchronize_session="fetch"))
        conversations = select(Conversation.id).where(Conversation.customer_id == source).scalar_subquery()
        session.execute(update(Case).where(Case.conversation_id.in_(conversations))
                        .values(customer_id=target).execution_options(synchronize_session=False))
        session.execute(update(Conversation).where(Conversation.customer_id == source)
                        .values(customer_id=target).execution_options(synchronize_session="fetch"))
    session.delete(placeholder)
    session.flush()


def record_held(session: Session, item_id: int, reason: str) -> None:
    """Outside the channel's window with no template for it: the item ends ``needs_template``."""
    item = session.get(OutboxItem, item_id)
    if item.last_error == gdpr.CANCELLED:
        return
    item.status, item.lease_until, item.last_error = OutboxStatus.needs_template, None, reason[:2000]
    if item.message_id is not None:
        message = session.get(Message, item.message_id)
        message.status, message.last_error = OutboxStatus.needs_template.value, item.last_error
    logger.warning("dispatcher: outbox %s held: %s", item.id, reason)


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
    if error.needs_template:  # the platform says the window is closed (our clock was off)
        item.status = OutboxStatus.needs_template
        if item.message_id is not None:
            message = session.get(Message, item.message_id)
            message.status, message.last_error = OutboxStatus.needs_template.value, item.last_error
        logger.warning("dispatcher: outbox %s needs a template: %s", item.id, error.reason)
        return
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
