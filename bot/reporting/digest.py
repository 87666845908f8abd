"""The weekly recurring-issue digest per root-cause owner, and the scheduler that sends it.

For each owner in the taxonomy: their root causes' figures for the 7 days before the digest
date vs the 7 days before those (contacts, trend, repeat-contact rate, CSAT, customers' own
words from CSAT comments), delivered to every configured report sink (``bot/reporting/sinks``).

The service sends it at ``reports.digest_weekday`` ``reports.digest_time`` in the
opening-hours time zone. Once per week, whatever the number of replicas or restarts: the week
is claimed in ``report_digests`` (unique per week) before anything is delivered; a claim that
was never completed (a replica died while sending) is taken over after ``STALE_CLAIM``; a
failed delivery releases the claim so the next check tries again -- each delivery (owner,
sink) is recorded as it happens, so the retry sends only what is missing, never a sink's
digest twice.

GDPR: each quoted CSAT comment carries its ``contact_id``. Right before a digest goes to a sink,
quotes whose comment was erased since the digest was built are blanked
(:func:`redact_erased_comments`); an erase blanks them in the digests a sink keeps
(``ReportSink.erase_comments``, ``bot/privacy/gdpr.py``), both with :func:`redact_words`.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.config import Config
from bot.reporting.digest_format import DIGEST_KIND, redact_words
from bot.reporting.recurring_issues import Period, change_pct, comments, recurring_issue_report, trend
from bot.reporting.sinks import build_sinks
from bot.store.models import Contact, ReportDigest, utcnow

logger = logging.getLogger(__name__)

STALE_CLAIM = dt.timedelta(minutes=15)
CATCH_UP = dt.timedelta(hours=24)  # a service that was down at the due time still sends within this
DIGEST_FIELDS = ("contacts", "previous_contacts", "change_pct", "trend", "customers", "repeated", "repeat_rate",
                 "bot_share", "median_first_response_seconds", "csat_asked", "csat_answered",
                 "csat_response_rate", "csat_mean")


def digest_period(day: dt.date, zone: ZoneInfo) -> Period:
    """The 7 days before ``day`` (local midnights)."""
    end = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
    start = dt.datetime.combine(day - dt.timedelta(days=7), dt.time(0), tzinfo=zone)
    return Period(start, end)


def build_digests(session: Session, taxonomy: Any, day: dt.date, zone: ZoneInfo,
                  language: str = "en") -> List[Dict[str, Any]]:
    """One digest per owner (taxonomy order) for the week before ``day``."""
    period = digest_period(day, zone)
    report = recurring_issue_report(session, period, taxonomy, language)
    by_code = {row["root_cause"]: row for row in report["rows"]}
    active = [c.code for c in taxonomy.causes if by_code.get(c.code, {}).get("contacts")]
    words = comments(session, period, active) if active else {}
    owners: Dict[str, List[Any]] = {}
    for cause in taxonomy.causes:
        owners.setdefault(cause.owner, []).append(cause)
    digests = []
    for owner, causes in owners.items():
        rows = []
        for cause in causes:
            row = by_code.get(cause.code, {})
            figures = {k: row.get(k) for k in DIGEST_FIELDS}
            figures.update({k: figures[k] or 0 for k in ("contacts", "previous_contacts", "customers", "repeated",
                                                          "csat_asked", "csat_answered")})
            if not row:
                figures["trend"] = "none"
            rows.append({"root_cause": cause.code, "title": cause.title(language), **figures,
                         "customer_words": words.get(cause.code, [])})
        rows.sort(key=lambda r: (-r["contacts"], -r["previous_contacts"], r["root_cause"]))
        digests.append({
            "kind": DIGEST_KIND,
            "owner": owner,
            "date": day.isoformat(),
            "period": report["period"],
            "previous_period": report["previous_period"],
            "root_causes": rows,
            "totals": _owner_totals(rows),
            "report_path": f"/console/reports?start={period.start.date().isoformat()}&end={day.isoformat()}",
        })
    return digests


def _owner_totals(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    contacts = sum(r["contacts"] for r in rows)
    previous = sum(r["previous_contacts"] for r in rows)
    repeated = sum(r["repeated"] for r in rows)
    asked = sum(r["csat_asked"] for r in rows)
    answered = sum(r["csat_answered"] for r in rows)
    score = sum((r["csat_mean"] or 0) * r["csat_answered"] for r in rows)
    return {"contacts": contacts, "previous_contacts": previous, "change_pct": change_pct(contacts, previous),
            "trend": trend(contacts, previous), "repeated": repeated,
            "repeat_rate": round(repeated / contacts, 4) if contacts else None,
            "csat_asked": asked, "csat_answered": answered,
            "csat_response_rate": round(answered / asked, 4) if asked else None,
            "csat_mean": round(score / answered, 2) if answered else None}


def redact_erased_comments(session: Session, digest: Dict[str, Any]) -> int:
    """Right before a digest goes out: blank the quotes whose comment was erased since it was built."""
    quoted = {w["contact_id"] for row in digest.get("root_causes") or [] for w in row.get("customer_words") or []
              if w.get("text") is not None and w.get("contact_id") is not None}
    if not quoted:
        return 0
    kept = set(session.execute(select(Contact.id).where(
        Contact.id.in_(quoted), Contact.csat_comment.is_not(None))).scalars())
    redacted = redact_words(digest, quoted - kept)
    if redacted:
        logger.info("digest for %s: %d erased comment(s) left out", digest.get("owner"), redacted)
    return redacted


def erased_comments_check(store: Any) -> Callable[[Dict[str, Any]], Awaitable[int]]:
    """A ``before_send`` for :func:`deliver`: :func:`redact_erased_comments` in its own unit of work."""
    async def recheck(digest: Dict[str, Any]) -> int:
        return await store.run(redact_erased_comments, digest)

    return recheck


async def deliver(digests: Sequence[Dict[str, Any]], sinks: Sequence[Any],
                  already: Sequence[Dict[str, Any]] = (),
                  on_delivered: Optional[Callable[[Dict[str, Any]], Awaitable[None]]] = None,
                  before_send: Optional[Callable[[Dict[str, Any]], Awaitable[Any]]] = None,
                  ) -> List[Dict[str, Any]]:
    """Every digest to every sink, except the deliveries in ``already`` (an earlier try that
    failed half-way); what was delivered where. ``on_delivered`` records each one as it happens;
    ``before_send`` may amend a digest right before each send (erased comments)."""
    done = list(already)
    skip = {(entry["owner"], entry["sink"]) for entry in already}
    for digest in digests:
        for sink in sinks:
            entry = {"owner": digest["owner"], "sink": sink.describe()}
            if (entry["owner"], entry["sink"]) in skip:
                continue
            if before_send is not None:
                await before_send(digest)
            await sink.deliver(digest)
            done.append(entry)
            if on_delivered is not None:
                await on_delivered(entry)
    return done


# --------------------------------------------------------------------------- scheduling


def latest_due(now: dt.datetime, zone: ZoneInfo, weekday: int, at: dt.time) -> dt.datetime:
    """The most recent scheduled moment at or before ``now`` (aware, in ``zone``)."""
    local = now.astimezone(zone)
    day = local.date() - dt.timedelta(days=(local.weekday() - weekday) % 7)
    due = dt.datetime.combine(day, at, tzinfo=zone)
    if due > local:
        due = dt.datetime.combine(day - dt.timedelta(days=7), at, tzinfo=zone)
    return due


def _insert_claim(session: Session, week: dt.date, now: dt.datetime) -> None:
    session.add(ReportDigest(week=week, claimed_at=now, details={}))
    session.flush()


def _take_over(session: Session, week: dt.date, now: dt.datetime) -> bool:
    result = session.execute(update(ReportDigest).where(
        ReportDigest.week == week, ReportDigest.sent_at.is_(None), ReportDigest.claimed_at < now - STALE_CLAIM,
    ).values(claimed_at=now))
    return result.rowcount == 1


def _mark_sent(session: Session, week: dt.date, now: dt.datetime, details: Dict[str, Any]) -> None:
    session.execute(update(ReportDigest).where(ReportDigest.week == week).values(sent_at=now, details=details))


def _release(session: Session, week: dt.date, now: dt.datetime) -> None:
    """Give the claim up at once (the next check tries again), keeping what was delivered."""
    session.execute(update(ReportDigest).where(ReportDigest.week == week, ReportDigest.sent_at.is_(None))
                    .values(claimed_at=now - STALE_CLAIM - dt.timedelta(seconds=1)))


def _record_delivery(session: Session, week: dt.date, entry: Dict[str, Any]) -> None:
    row = session.execute(select(ReportDigest).where(ReportDigest.week == week).with_for_update()).scalar_one()
    row.details = {**(row.details or {}), "deliveries": [*(row.details or {}).get("deliveries", []), entry]}


def _delivered(session: Session, week: dt.date) -> List[Dict[str, Any]]:
    details = session.execute(select(ReportDigest.details).where(ReportDigest.week == week)).scalar_one_or_none()
    return list((details or {}).get("deliveries", []))


def sent_weeks(session: Session) -> List[Dict[str, Any]]:
    rows = session.execute(select(ReportDigest).order_by(ReportDigest.week)).scalars().all()
    return [{"week": r.week.isoformat(), "sent_at": r.sent_at.isoformat() if r.sent_at else None,
             "details": r.details} for r in rows]


@dataclass(frozen=True)
class WeekSent:
    """What :func:`send_week` did: ``status`` "sent" (the ``digests``; ``deliveries``: owner,
    sink each), "already_sent" (at ``sent_at``) or "in_progress" (claimed by another sender just
    now)."""

    status: str
    digests: List[Dict[str, Any]] = field(default_factory=list)
    deliveries: List[Dict[str, Any]] = field(default_factory=list)
    sent_at: Optional[dt.datetime] = None


async def send_week(store: Any, taxonomy: Any, sinks: Sequence[Any], zone: ZoneInfo, week: dt.date,
                    clock: Callable[[], dt.datetime] = utcnow) -> WeekSent:
    """Send the digest of the 7 days before ``week`` to ``sinks`` once: claim the week, deliver
    what an earlier try did not, mark it sent. The service's scheduler and ``webcare reports
    digest`` both go through here, so a digest sent by hand is not sent again by the service.

    A failed delivery releases the claim (the deliveries made are kept) and raises.
    """
    now = clock()
    try:
        await store.run(_insert_claim, week, now)
    except IntegrityError:
        if not await store.run(_take_over, week, now):
            sent_at = await store.run(_sent_at, week)
            return WeekSent("already_sent" if sent_at else "in_progress", sent_at=sent_at)

    async def recorded(entry: Dict[str, Any]) -> None:
        await store.run(_record_delivery, week, entry)

    try:
        already = await store.run(_delivered, week)  # an earlier try got this far
        digests = await store.run(build_digests, taxonomy, week, zone)
        done = await deliver(digests, sinks, already, recorded, erased_comments_check(store))
    except BaseException:
        await store.run(_release, week, clock())
        raise
    await store.run(_mark_sent, week, clock(), {"deliveries": done})
    logger.info("weekly digest of %s sent: %d owner(s), %d sink(s)", week, len(digests), len(sinks))
    return WeekSent("sent", list(digests), done)


def _sent_at(session: Session, week: dt.date) -> Optional[dt.datetime]:
    return session.execute(select(ReportDigest.sent_at).where(ReportDigest.week == week)).scalar_one_or_none()


class DigestScheduler:
    """Sends the weekly digest once per week (see the module docstring)."""

    def __init__(self, store: Any, taxonomy: Any, sinks: Sequence[Any], zone: ZoneInfo, weekday: int,
                 at: dt.time, check_seconds: float = 60.0,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.store, self.taxonomy, self.sinks, self.zone = store, taxonomy, list(sinks), zone
        self.weekday, self.at, self.check_seconds, self.clock = weekday, at, check_seconds, clock

    @classmethod
    def from_config(cls, config: Config, store: Any, taxonomy: Any, **kwargs: Any) -> "DigestScheduler":
        reports = config.reports
        return cls(store, taxonomy, build_sinks(reports.sinks), config.opening_hours.timezone,
                   reports.digest_weekday, reports.digest_time, **kwargs)

    async def tick(self) -> Optional[dt.date]:
        """Send this week's digest if it is due and nobody sent or is sending it; the week sent."""
        now = self.clock()
        due = latest_due(now, self.zone, self.weekday, self.at)
        if now - due > CATCH_UP:
            return None
        week = due.date()
        try:
            sent = await send_week(self.store, self.taxonomy, self.sinks, self.zone, week, self.clock)
        except Exception:
            logger.exception("weekly digest of %s: delivery failed; trying again later", week)
            return None
        return week if sent.status == "sent" else None

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("weekly digest check failed")
            await asyncio.sleep(self.check_seconds)
