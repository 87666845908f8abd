"""Fix announcements: one message to everyone a known issue affected, paced, resumable, never twice.

Resolving a known issue (:func:`resolve`) creates a :class:`Broadcast` and one
:class:`BroadcastRecipient` per customer in the same transaction:

* every subscriber ("tell me when it's fixed" is consent for this one announcement), and
* with ``include_contacted``, every customer who opted in to proactive messages
  (``opt_ins.proactive``) and had a contact about the issue's root cause within
  ``window_days`` — never a customer without opt-in.

Each recipient is reached on their most recently used reachable channel identity, in the
language of their latest conversation. The unique key (broadcast, customer) makes "one
message per customer" a database rule.

The :class:`Broadcaster` background task moves ``pending`` recipients into the outbox (key
``broadcast:{broadcast_id}:{customer_id}``) in the same transaction that marks them
``queued``, and keeps only about ``queue_ahead_seconds`` × the channel's rate limit queued
but unsent, so the dispatcher's rate limit paces delivery and other messages are not stuck
behind thousands of announcements. It copies the outbox outcome back (``sent`` /
``failed``), skips customers who opted out meanwhile or became unreachable, and marks the
broadcast ``done``. Every step is a committed state change, so a crash or a kill resumes
where it stopped; the idempotency keys mean nobody is queued twice.
"""
from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import logging
import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from bot.store import audit
from bot.accounts import Actor
from bot.errors import InvalidInput, Conflict, NotFound
from bot.events import KnownIssuesChanged, emit
from bot.pipeline.outbox import enqueue
from bot.store.database import Store
from bot.store.models import (
    Broadcast,
    BroadcastRecipient,
    BroadcastStatus,
    ChannelIdentity,
    Contact,
    Conversation,
    Customer,
    KnownIssue,
    KnownIssueStatus,
    KnownIssueSubscription,
    OptIn,
    OutboxItem,
    OutboxStatus,
    Purpose,
    utcnow,
)

logger = logging.getLogger(__name__)

MAX_TEXT = 2000
MAX_WINDOW_DAYS = 365
DEFAULT_WINDOW_DAYS = 14
CHUNK = 500  # ids per IN (...) clause
RATE_WINDOW_SECONDS = 10.0  # the progress "rate" is measured over this much recent time
SUBSCRIBER, CONTACTED = "subscriber", "contacted"
FINAL = ("sent", "failed", "skipped")


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def _clean_text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"'{field}' is required", field=field)
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise InvalidInput(f"'{field}' is longer than {MAX_TEXT} characters", field=field)
    return value


def _window_days(value: Optional[int]) -> int:
    if value is None:
        return DEFAULT_WINDOW_DAYS
    if not 1 <= value <= MAX_WINDOW_DAYS:
        raise InvalidInput(f"'window_days' must be between 1 and {MAX_WINDOW_DAYS}", field="window_days")
    return value


# ------------------------------------------------------------------ choosing recipients


def reachable_identities(session: Session, customer_ids: Sequence[int]) -> Dict[int, Tuple[int, Optional[str]]]:
    """customer -> (identity id, language): the reachable identity they wrote from last.

    The language is that of their latest conversation (any channel) that has one.
    """
    chosen: Dict[int, Tuple[int, Optional[str]]] = {}
    languages: Dict[int, str] = {}
    for chunk in _chunks(list(customer_ids)):
        rows = session.execute(
            select(Conversation.customer_id, Conversation.identity_id, Conversation.language,
                   ChannelIdentity.reachable)
            .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
            .where(Conversation.customer_id.in_(chunk))
            .order_by(Conversation.last_message_at.desc(), Conversation.id.desc())
        ).all()
        for customer_id, identity_id, language, reachable in rows:
            if language and customer_id not in languages:
                languages[customer_id] = language
            if reachable and customer_id not in chosen:
                chosen[customer_id] = (identity_id, None)
        # Customers whose identities have no conversation yet (e.g. linked by an agent).
        missing = [c for c in chunk if c not in chosen]
        if missing:
            for customer_id, identity_id in session.execute(
                select(ChannelIdentity.customer_id, ChannelIdentity.id)
                .where(ChannelIdentity.customer_id.in_(missing), ChannelIdentity.reachable.is_(True))
                .order_by(ChannelIdentity.id.desc())
            ).all():
                chosen.setdefault(customer_id, (identity_id, None))
    fallback = {}
    if customer_ids:
        for chunk in _chunks(list(customer_ids)):
            fallback.update(dict(session.execute(
                select(Customer.id, Customer.language).where(Customer.id.in_(chunk))).all()))
    return {customer_id: (identity_id, languages.get(customer_id) or fallback.get(customer_id))
            for customer_id, (identity_id, _) in chosen.items()}


def _language(value: Optional[str]) -> str:
    return "en" if value == "en" else "nl"


def choose_recipients(session: Session, issue: KnownIssue, include_contacted: bool, window_days: int,
                      now: dt.datetime) -> List[Dict[str, Any]]:
    """One entry per customer: subscribers, plus opted-in customers who contacted us about it."""
    wanted: Dict[int, Tuple[str, int]] = {}  # customer -> (reason, fallback identity)
    for customer_id, identity_id in session.execute(
        select(KnownIssueSubscription.customer_id, KnownIssueSubscription.identity_id)
        .where(KnownIssueSubscription.known_issue_id == issue.id).order_by(KnownIssueSubscription.id)
    ).all():
        wanted.setdefault(customer_id, (SUBSCRIBER, identity_id))
    if include_contacted:
        since = now - dt.timedelta(days=window_days)
        rows = session.execute(
            select(Contact.customer_id, Conversation.identity_id)
            .join(Conversation, Conversation.id == Contact.conversation_id)
            .join(OptIn, OptIn.customer_id == Contact.customer_id)
            .where(Contact.root_cause == issue.root_cause, Contact.started_at >= since,
                   OptIn.proactive.is_(True))
            .order_by(Contact.started_at.desc())
        ).all()
        for customer_id, identity_id in rows:
            wanted.setdefault(customer_id, (CONTACTED, identity_id))
    identities = reachable_identities(session, list(wanted))
    language_of = {}
    unreachable = [c for c in wanted if c not in identities]
    for chunk in _chunks(unreachable):
        language_of.update(dict(session.execute(
            select(Customer.id, Customer.language).where(Customer.id.in_(chunk))).all()))
    recipients = []
    for customer_id, (reason, fallback_identity) in wanted.items():
        if customer_id in identities:
            identity_id, language = identities[customer_id]
            recipients.append({"customer_id": customer_id, "identity_id": identity_id, "reason": reason,
                               "language": _language(language), "status": "pending", "error": None})
        else:
            recipients.append({"customer_id": customer_id, "identity_id": fallback_identity, "reason": reason,
                               "language": _language(language_of.get(customer_id)), "status": "skipped",
                               "error": "no reachable channel"})
    return recipients


def resolve(session: Session, issue_id: int, user: Optional[Actor], fix_text_nl: Optional[str],
            fix_text_en: Optional[str], window_days: Optional[int] = None, include_contacted: bool = False,
            now: Optional[dt.datetime] = None) -> Dict[str, Any]:
    """Resolve the known issue and announce the fix, in one transaction (see the module doc)."""
    now = now or utcnow()
    text_nl = _clean_text(fix_text_nl, "fix_text_nl")
    text_en = _clean_text(fix_text_en, "fix_text_en")
    include = include_contacted
    days = _window_days(window_days)
    issue = session.get(KnownIssue, issue_id)
    if issue is None:
        raise NotFound(f"no known issue {issue_id}")
    # Conditional update: of two concurrent resolves, exactly one wins.
    won = session.execute(
        update(KnownIssue).where(KnownIssue.id == issue_id, KnownIssue.status == KnownIssueStatus.open)
        .values(status=KnownIssueStatus.resolved, resolved_at=now, resolved_by=getattr(user, "id", None),
                fix_text_nl=text_nl, fix_text_en=text_en)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    if not won:
        raise Conflict(f"known issue {issue_id} is already resolved")
    session.refresh(issue)
    broadcast = Broadcast(known_issue_id=issue.id, text_nl=text_nl, text_en=text_en, window_days=days,
                          include_contacted=include, status=BroadcastStatus.sending,
                          created_by=getattr(user, "id", None), created_at=now)
    session.add(broadcast)
    session.flush()
    recipients = choose_recipients(session, issue, include, days, now)
    if recipients:
        session.execute(BroadcastRecipient.__table__.insert(), [
            {**r, "broadcast_id": broadcast.id, "updated_at": now} for r in recipients])
    if not any(r["status"] == "pending" for r in recipients):
        broadcast.status = BroadcastStatus.done
        broadcast.finished_at = now
    counts = {SUBSCRIBER: 0, CONTACTED: 0, "skipped": 0}
    for r in recipients:
        counts[r["reason"]] += 1
        counts["skipped"] += r["status"] == "skipped"
    audit.record(session, getattr(user, "id", None), "known_issue.resolve", "known_issue", issue.id, {
        "broadcast_id": broadcast.id, "recipients": len(recipients), "subscribers": counts[SUBSCRIBER],
        "contacted": counts[CONTACTED], "skipped": counts["skipped"], "include_contacted": include,
        "window_days": days})
    emit(session, KnownIssuesChanged(issue.id))
    return {"known_issue_id": issue.id, "broadcast_id": broadcast.id, "recipients": len(recipients),
            "subscribers": counts[SUBSCRIBER], "contacted": counts[CONTACTED], "skipped": counts["skipped"],
            "status": broadcast.status.value}


def preview(session: Session, issue_id: int, include_contacted: bool, window_days: int) -> Dict[str, int]:
    """How many customers a resolve would reach now (nothing is written)."""
    issue = session.get(KnownIssue, issue_id)
    if issue is None:
        raise NotFound(f"no known issue {issue_id}")
    recipients = choose_recipients(session, issue, include_contacted, window_days, utcnow())
    return {"subscribers": sum(r["reason"] == SUBSCRIBER for r in recipients),
            "contacted": sum(r["reason"] == CONTACTED for r in recipients),
            "unreachable": sum(r["status"] == "skipped" for r in recipients)}


# ------------------------------------------------------------------ the broadcaster


def active_broadcasts(session: Session) -> List[int]:
    return list(session.execute(
        select(Broadcast.id).where(Broadcast.status == BroadcastStatus.sending).order_by(Broadcast.id)).scalars())


def _sync_outcomes(session: Session, broadcast_id: int, now: dt.datetime) -> None:
    """Copy the outbox outcome of queued recipients (sent / failed with its reason)."""
    rows = session.execute(
        select(BroadcastRecipient.id, OutboxItem.status, OutboxItem.last_error)
        .join(OutboxItem, OutboxItem.id == BroadcastRecipient.outbox_id)
        .where(BroadcastRecipient.broadcast_id == broadcast_id, BroadcastRecipient.status == "queued",
               OutboxItem.status != OutboxStatus.pending)
    ).all()
    for recipient_id, status, error in rows:
        values: Dict[str, Any] = {"status": "sent" if status == OutboxStatus.sent else "failed", "updated_at": now}
        if status != OutboxStatus.sent:
            values["error"] = (error or "delivery failed")[:2000]
        session.execute(update(BroadcastRecipient).where(BroadcastRecipient.id == recipient_id).values(**values)
                        .execution_options(synchronize_session=False))


def _in_flight(session: Session) -> Dict[str, int]:
    """Announcements queued but not yet delivered, per channel (all broadcasts)."""
    return dict(session.execute(
        select(OutboxItem.channel, func.count(OutboxItem.id))
        .where(OutboxItem.source == "broadcast", OutboxItem.status == OutboxStatus.pending)
        .group_by(OutboxItem.channel)
    ).all())


def _skip(session: Session, recipient_ids: Sequence[int], error: str, now: dt.datetime) -> None:
    for chunk in _chunks(list(recipient_ids)):
        session.execute(update(BroadcastRecipient)
                        .where(BroadcastRecipient.id.in_(chunk), BroadcastRecipient.status == "pending")
                        .values(status="skipped", error=error, updated_at=now)
                        .execution_options(synchronize_session=False))


def advance(session: Session, broadcast_id: int, rates: Mapping[str, float], queue_ahead_seconds: float,
            now: Optional[dt.datetime] = None) -> int:
    """One step of a broadcast: outcomes in, more recipients into the outbox, done when all are final.

    Returns how many messages were queued.
    """
    now = now or utcnow()
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None or broadcast.status != BroadcastStatus.sending:
        return 0
    _sync_outcomes(session, broadcast_id, now)
    in_flight = _in_flight(session)
    pending_channels = session.execute(
        select(ChannelIdentity.channel, func.count(BroadcastRecipient.id))
        .join(ChannelIdentity, ChannelIdentity.id == BroadcastRecipient.identity_id)
        .where(BroadcastRecipient.broadcast_id == broadcast_id, BroadcastRecipient.status == "pending")
        .group_by(ChannelIdentity.channel)
    ).all()
    queued = 0
    for channel, _count in pending_channels:
        if channel not in rates:
            ids = session.execute(
                select(BroadcastRecipient.id)
                .join(ChannelIdentity, ChannelIdentity.id == BroadcastRecipient.identity_id)
                .where(BroadcastRecipient.broadcast_id == broadcast_id, BroadcastRecipient.status == "pending",
                       ChannelIdentity.channel == channel)).scalars().all()
            _skip(session, ids, f"channel {channel!r} is not configured", now)
            continue
        ahead = max(1, math.ceil(queue_ahead_seconds * rates[channel]))
        budget = ahead - in_flight.get(channel, 0)
        if budget > 0:
            queued += _queue(session, broadcast, channel, budget, now)
    remaining = session.execute(
        select(func.count(BroadcastRecipient.id))
        .where(BroadcastRecipient.broadcast_id == broadcast_id, BroadcastRecipient.status.in_(("pending", "queued")))
    ).scalar_one()
    if remaining == 0:
        broadcast.status = BroadcastStatus.done
        broadcast.finished_at = now
        logger.info("broadcast %s done", broadcast_id)
    return queued


def _queue(session: Session, broadcast: Broadcast, channel: str, budget: int, now: dt.datetime) -> int:
    """Move up to ``budget`` pending recipients on ``channel`` into the outbox."""
    rows = session.execute(
        select(BroadcastRecipient, ChannelIdentity)
        .join(ChannelIdentity, ChannelIdentity.id == BroadcastRecipient.identity_id)
        .where(BroadcastRecipient.broadcast_id == broadcast.id, BroadcastRecipient.status == "pending",
               ChannelIdentity.channel == channel)
        .order_by(BroadcastRecipient.id).limit(budget)
    ).all()
    if not rows:
        return 0
    customers = [r.customer_id for r, _ in rows]
    opt_ins = dict(session.execute(select(OptIn.customer_id, OptIn).where(OptIn.customer_id.in_(customers))).all())
    subscribed = set(session.execute(
        select(KnownIssueSubscription.customer_id)
        .where(KnownIssueSubscription.known_issue_id == broadcast.known_issue_id,
               KnownIssueSubscription.customer_id.in_(customers))).scalars()) if broadcast.known_issue_id else set()
    conversations = dict(session.execute(
        select(Conversation.identity_id, func.max(Conversation.id))
        .where(Conversation.identity_id.in_([i.id for _, i in rows])).group_by(Conversation.identity_id)).all())
    queued = 0
    for recipient, identity in rows:
        opt_in = opt_ins.get(recipient.customer_id)
        stopped = opt_in is not None and not opt_in.proactive and opt_in.source == "stop"
        if recipient.reason == SUBSCRIBER:
            allowed = not stopped and recipient.customer_id in subscribed
        else:  # contacted: only with an opt-in, checked again now
            allowed = opt_in is not None and opt_in.proactive
        if not allowed:
            recipient.status, recipient.error, recipient.updated_at = "skipped", "opted out", now
            continue
        if not identity.reachable:
            recipient.status, recipient.error, recipient.updated_at = "skipped", "no reachable channel", now
            continue
        text = broadcast.text_en if recipient.language == "en" else broadcast.text_nl
        item = enqueue(session, key=f"broadcast:{broadcast.id}:{recipient.customer_id}", channel=channel,
                       recipient=identity.external_id, payload={"text": text}, source="broadcast",
                       conversation_id=conversations.get(identity.id), purpose=Purpose.broadcast)
        recipient.status, recipient.outbox_id, recipient.updated_at = "queued", item.id, now
        queued += 1
    return queued


def skip_customer(session: Session, customer_id: int, error: str = "opted out") -> int:
    """The customer said "stop": announcements not sent yet are skipped.

    Pending recipients are skipped; queued ones too when their outbox item has not left yet
    (pending and not leased by a dispatcher, whose send may be under way).
    """
    now = utcnow()
    skipped = session.execute(
        update(BroadcastRecipient)
        .where(BroadcastRecipient.customer_id == customer_id, BroadcastRecipient.status == "pending")
        .values(status="skipped", error=error, updated_at=now)
        .execution_options(synchronize_session=False)).rowcount or 0
    queued = session.execute(
        select(BroadcastRecipient.id, BroadcastRecipient.outbox_id)
        .where(BroadcastRecipient.customer_id == customer_id, BroadcastRecipient.status == "queued",
               BroadcastRecipient.outbox_id.is_not(None))).all()
    for recipient_id, outbox_id in queued:
        cancelled = session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == outbox_id, OutboxItem.status == OutboxStatus.pending,
                   or_(OutboxItem.lease_until.is_(None), OutboxItem.lease_until < now))
            .values(status=OutboxStatus.failed, last_error=error)
            .execution_options(synchronize_session=False)).rowcount
        if cancelled:
            session.execute(
                update(BroadcastRecipient).where(BroadcastRecipient.id == recipient_id)
                .values(status="skipped", error=error, updated_at=now)
                .execution_options(synchronize_session=False))
            skipped += 1
    return skipped


class Broadcaster:
    """Background task: feeds sending broadcasts into the outbox at the channels' pace."""

    def __init__(self, store: Store, rates: Mapping[str, float], queue_ahead_seconds: float = 5.0,
                 interval_seconds: float = 0.5, idle_seconds: float = 2.0) -> None:
        self.store = store
        self.rates = dict(rates)
        self.queue_ahead_seconds = float(queue_ahead_seconds)
        self.interval = interval_seconds
        self.idle = idle_seconds
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A broadcast was created: start now."""
        self._wake.set()

    async def step(self) -> bool:
        """Advance every sending broadcast once; True while any is still sending."""
        active = await self.store.run(active_broadcasts)
        for broadcast_id in active:
            await self.store.run(advance, broadcast_id, self.rates, self.queue_ahead_seconds)
        return bool(active)

    async def run(self) -> None:
        while True:
            busy = False
            try:
                busy = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("broadcaster: a step failed; retrying")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval if busy else self.idle)
            except asyncio.TimeoutError:
                pass


# ------------------------------------------------------------------ progress and the report


def progress(session: Session, broadcast_id: int, now: Optional[dt.datetime] = None) -> Dict[str, Any]:
    """Counts per status, the recent delivery rate (messages/second) and whether it is done."""
    now = now or utcnow()
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise NotFound(f"no broadcast {broadcast_id}")
    _sync_outcomes(session, broadcast_id, now)  # read-your-writes: outcomes as of now
    counts = dict(session.execute(
        select(BroadcastRecipient.status, func.count(BroadcastRecipient.id))
        .where(BroadcastRecipient.broadcast_id == broadcast_id).group_by(BroadcastRecipient.status)).all())
    since = now - dt.timedelta(seconds=RATE_WINDOW_SECONDS)
    recent = session.execute(
        select(func.count(OutboxItem.id))
        .join(BroadcastRecipient, BroadcastRecipient.outbox_id == OutboxItem.id)
        .where(BroadcastRecipient.broadcast_id == broadcast_id, OutboxItem.sent_at >= since)).scalar_one()
    total = sum(counts.values())
    final = sum(counts.get(s, 0) for s in FINAL)
    return {
        "broadcast_id": broadcast.id,
        "known_issue_id": broadcast.known_issue_id,
        "status": broadcast.status.value,
        "total": total,
        "pending": counts.get("pending", 0),
        "queued": counts.get("queued", 0),
        "sent": counts.get("sent", 0),
        "failed": counts.get("failed", 0),
        "skipped": counts.get("skipped", 0),
        "done_fraction": round(final / total, 4) if total else 1.0,
        "rate": round(recent / RATE_WINDOW_SECONDS, 2),
        "started_at": broadcast.created_at.isoformat(),
        "finished_at": broadcast.finished_at.isoformat() if broadcast.finished_at else None,
    }


def _recipient_rows(session: Session, broadcast_id: int, statuses: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    query = (
        select(BroadcastRecipient, ChannelIdentity.channel, ChannelIdentity.external_id, Customer.display_name,
               OutboxItem.sent_at, OutboxItem.attempts)
        .join(ChannelIdentity, ChannelIdentity.id == BroadcastRecipient.identity_id)
        .join(Customer, Customer.id == BroadcastRecipient.customer_id)
        .outerjoin(OutboxItem, OutboxItem.id == BroadcastRecipient.outbox_id)
        .where(BroadcastRecipient.broadcast_id == broadcast_id)
        .order_by(BroadcastRecipient.id)
    )
    if statuses:
        query = query.where(BroadcastRecipient.status.in_(tuple(statuses)))
    return [{
        "customer_id": r.customer_id, "customer": name or f"customer {r.customer_id}", "channel": channel,
        "recipient": external_id, "reason": r.reason, "language": r.language, "status": r.status,
        "error": r.error, "attempts": attempts or 0, "sent_at": sent_at.isoformat() if sent_at else None,
    } for r, channel, external_id, name, sent_at, attempts in session.execute(query).all()]


def report(session: Session, broadcast_id: int) -> Dict[str, Any]:
    """The delivery report: progress counts, per reason, and every failed or skipped recipient."""
    data = progress(session, broadcast_id)
    by_reason = dict(session.execute(
        select(BroadcastRecipient.reason, func.count(BroadcastRecipient.id))
        .where(BroadcastRecipient.broadcast_id == broadcast_id).group_by(BroadcastRecipient.reason)).all())
    data["by_reason"] = {SUBSCRIBER: by_reason.get(SUBSCRIBER, 0), CONTACTED: by_reason.get(CONTACTED, 0)}
    data["failures"] = _recipient_rows(session, broadcast_id, ("failed",))
    data["skips"] = _recipient_rows(session, broadcast_id, ("skipped",))
    broadcast = session.get(Broadcast, broadcast_id)
    data["window_days"] = broadcast.window_days
    data["include_contacted"] = broadcast.include_contacted
    if broadcast.finished_at is not None:
        data["duration_seconds"] = round((broadcast.finished_at - broadcast.created_at).total_seconds(), 1)
    return data


CSV_COLUMNS = ("customer_id", "customer", "channel", "recipient", "reason", "language", "status", "error",
               "attempts", "sent_at")


def report_csv(session: Session, broadcast_id: int) -> str:
    """Every recipient of the broadcast as CSV (UTF-8, comma-separated, header row)."""
    if session.get(Broadcast, broadcast_id) is None:
        raise NotFound(f"no broadcast {broadcast_id}")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in _recipient_rows(session, broadcast_id):
        # Neutralise spreadsheet formulas in customer-controlled text.
        writer.writerow({k: ("'" + v if isinstance(v, str) and v[:1] in "=+-@" else v) for k, v in row.items()})
    return out.getvalue()


def latest_broadcast(session: Session, known_issue_id: int) -> Optional[int]:
    return session.execute(
        select(Broadcast.id).where(Broadcast.known_issue_id == known_issue_id)
        .order_by(Broadcast.id.desc()).limit(1)).scalar_one_or_none()
