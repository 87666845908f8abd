"""The recurring-issue report: what keeps coming back, per root cause, over a period.

Pure query functions: each takes a SQLAlchemy ``Session`` and returns plain dicts/lists, so
the console, the JSON API, the CSV export, the weekly digest and ``bench reports`` share them.
A period is ``[start, end)`` (aware datetimes); the previous period has the same length and
ends where this one starts.

Figures per root cause: contacts, distinct customers, the previous period's contacts and the
change in %, the share handled by the bot / by a human, the **repeat-contact rate** (the share
of the period's contacts whose ``repeated`` flag is set: the same customer came back with the
same root cause within 7 days, so it was not resolved the first time — the flag is stored on
the contact, so a repeat after the period's end counts too), the median first-response and
handling times, and CSAT (response rate = answered / asked, mean score).

Medians: PostgreSQL computes them with ``percentile_cont``; SQLite has no such aggregate, so
the period's two duration columns are read from a covering index (``ix_contacts_report``)
and the medians are taken with numpy.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Text, and_, case, cast, func, or_, select, text
from sqlalchemy.orm import Session

from bot.errors import InvalidInput
from bot.store.models import Contact, Customer

PRESET_DAYS = (7, 28, 90)
MAX_DAYS = 731
TREND_THRESHOLD_PCT = 5.0  # a change smaller than this is "flat"
REPEAT_HIGHLIGHT = 0.2  # repeat-contact rates from here on are highlighted
PAGE_SIZE = 50
NO_ROOT_CAUSE = "none"  # the drill-down path for contacts without a root cause
TOTAL = "TOTAL"


# --------------------------------------------------------------------------- periods


@dataclass(frozen=True)
class Period:
    """``[start, end)``, both aware."""

    start: dt.datetime
    end: dt.datetime

    @property
    def length(self) -> dt.timedelta:
        return self.end - self.start

    @property
    def days(self) -> float:
        return self.length.total_seconds() / 86400

    def previous(self) -> "Period":
        return Period(self.start - self.length, self.start)

    def as_dict(self, zone: Optional[ZoneInfo] = None) -> Dict[str, Any]:
        start, end = (self.start, self.end) if zone is None else (self.start.astimezone(zone),
                                                                    self.end.astimezone(zone))
        return {"start": start.isoformat(), "end": end.isoformat(), "days": round(self.days, 4)}


def _local_midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone)


def _parse_moment(name: str, value: str, zone: ZoneInfo) -> dt.datetime:
    value = value.strip()
    try:
        if len(value) == 10:
            return _local_midnight(dt.date.fromisoformat(value), zone)
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name} must be a date (YYYY-MM-DD) or an ISO date-time, not {value!r}",
                         parameter=name) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def last_days(days: int, zone: ZoneInfo, now: Optional[dt.datetime] = None) -> Period:
    """The last ``days`` calendar days in ``zone``, today included."""
    today = (now or dt.datetime.now(dt.timezone.utc)).astimezone(zone).date()
    end = today + dt.timedelta(days=1)
    return Period(_local_midnight(end - dt.timedelta(days=days), zone), _local_midnight(end, zone))


def parse_period(query: Mapping[str, str], zone: ZoneInfo, default_days: int = 28,
                 now: Optional[dt.datetime] = None) -> Period:
    """The period a request asks for: ``start`` and ``end`` (end excluded; dates are local
    midnights in ``zone``), or ``days`` (the last N days, today included), or the default."""
    start, end = (query.get("start") or "").strip(), (query.get("end") or "").strip()
    if start or end:
        if not (start and end):
            raise InvalidInput("give both start and end (YYYY-MM-DD; end is not included)")
        period = Period(_parse_moment("start", start, zone), _parse_moment("end", end, zone))
        if period.end <= period.start:
            raise InvalidInput(f"end ({end}) must be after start ({start})")
        if period.days > MAX_DAYS:
            raise InvalidInput(f"a period is at most {MAX_DAYS} days, not {period.days:.0f}")
        if period.start.year < 2000:
            raise InvalidInput("start is before the year 2000")
        return period
    raw = (query.get("days") or "").strip()
    if raw:
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_DAYS:
            raise InvalidInput(f"days must be a whole number from 1 to {MAX_DAYS}, not {raw!r}")
        return last_days(int(raw), zone, now)
    return last_days(int(default_days), zone, now)


# --------------------------------------------------------------------------- helpers


def _in(period: Period) -> Any:
    return and_(Contact.started_at >= period.start, Contact.started_at < period.end)


def _ratio(part: Optional[float], whole: Optional[float]) -> Optional[float]:
    return round(part / whole, 4) if whole else None


def change_pct(current: int, previous: int) -> Optional[float]:
    return round((current - previous) * 100.0 / previous, 1) if previous else None


def trend(current: int, previous: int) -> str:
    """``up``, ``down``, ``flat``, ``new`` (none before) or ``none`` (none at all)."""
    if not previous:
        return "new" if current else "none"
    pct = (current - previous) * 100.0 / previous
    if pct >= TREND_THRESHOLD_PCT:
        return "up"
    if pct <= -TREND_THRESHOLD_PCT:
        return "down"
    return "flat"


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# --------------------------------------------------------------------------- the report
#
# One sweep over the covering index ix_contacts_report (root_cause, channel, handled_by,
# started_at, ...): explicit IN lists for the first three columns (found by a loose index scan,
# a few index seeks) make both SQLite and PostgreSQL read each (root cause, channel, handler)
# range of the period in index order, so the GROUP BY streams without sorting. Each group also
# returns its customer ids and durations (in ms) as one concatenated string; numpy then counts
# distinct customers and takes the medians per root cause, per total — no second pass, and
# no percentile function needed (SQLite has none).


def _distinct_after(session: Session, column: Any, *where: Any) -> List[str]:
    """The distinct non-NULL values of ``column`` under ``where``, by index seeks (loose scan)."""
    values: List[str] = []
    while True:
        conditions = list(where) + ([column > values[-1]] if values else [column.is_not(None)])
        value = session.execute(select(func.min(column)).where(*conditions)).scalar()
        if value is None:
            return values
        values.append(value)


DISTINCT_ROOT_CAUSES = text("""
WITH RECURSIVE seen(code) AS (
    SELECT MIN(root_cause) FROM contacts
    UNION ALL
    SELECT (SELECT MIN(root_cause) FROM contacts WHERE root_cause > seen.code) FROM seen WHERE seen.code IS NOT NULL
)
SELECT code FROM seen WHERE code IS NOT NULL
""")


def present_root_causes(session: Session) -> Tuple[List[str], bool]:
    """The root causes that occur in ``contacts`` at all, and whether some contacts have none
    (a loose index scan: one index seek per root cause, in one statement)."""
    codes = list(session.execute(DISTINCT_ROOT_CAUSES).scalars())
    has_null = session.execute(select(Contact.id).where(Contact.root_cause.is_(None)).limit(1)).first() is not None
    return codes, has_null


def _channels(session: Session, codes: Sequence[str], has_null: bool) -> List[str]:
    channels: set = set()
    for code in codes:
        channels.update(_distinct_after(session, Contact.channel, Contact.root_cause == code))
    if has_null:
        channels.update(_distinct_after(session, Contact.channel, Contact.root_cause.is_(None)))
    return sorted(channels)


def _concat(session: Session, expression: Any) -> Any:
    if _is_postgres(session):
        return func.string_agg(cast(expression, Text), ",")
    return func.group_concat(expression)


def _ms(column: Any) -> Any:
    return cast(func.round(column * 1000), BigInteger)


def _sweep(session: Session, period: Period) -> List[Any]:
    """Per (root cause, channel, handler) of ``period``: counts, and the concatenated columns."""
    postgres = _is_postgres(session)
    if postgres:
        # JIT compilation costs PostgreSQL more than this sweep takes (and the plan is simple)
        session.execute(text("SET LOCAL jit = off"))
    else:
        codes, has_null = present_root_causes(session)
        if not codes and not has_null:
            return []
        channels = _channels(session, codes, has_null)
    columns = [
        Contact.root_cause, Contact.channel, Contact.handled_by,
        func.count().label("contacts"),
        func.sum(case((Contact.repeated.is_(True), 1), else_=0)).label("repeated"),
        func.count(Contact.csat_asked_at).label("asked"),
        func.count(Contact.csat_score).label("answered"),
        func.sum(Contact.csat_score).label("score_sum"),
        _concat(session, Contact.customer_id).label("customers"),
        _concat(session, _ms(Contact.first_response_seconds)).label("frt"),
        _concat(session, _ms(Contact.handling_seconds)).label("aht"),
    ]
    grouping = (Contact.root_cause, Contact.channel, Contact.handled_by)
    if postgres:  # PostgreSQL plans the period scan and a hash aggregate itself
        return session.execute(select(*columns).where(_in(period)).group_by(*grouping)).all()
    # SQLite: explicit IN lists make it read the covering index range by range, in order
    rows: List[Any] = []
    selections = ([Contact.root_cause.in_(codes)] if codes else []) + ([Contact.root_cause.is_(None)] if has_null else [])
    for selection in selections:
        rows += session.execute(
            select(*columns).where(selection, Contact.channel.in_(channels), Contact.handled_by.in_(HANDLERS),
                                   _in(period)).group_by(*grouping)
        ).all()
    return rows


HANDLERS = ("bot", "human")


def _ints(text: Optional[str]) -> Any:
    import numpy as np

    return np.fromstring(text, dtype=np.int64, sep=",") if text else np.empty(0, dtype=np.int64)


def _median_ms(parts: List[Any]) -> Optional[float]:
    import numpy as np

    values = np.concatenate(parts) if parts else np.empty(0)
    return None if len(values) == 0 else round(float(np.median(values)) / 1000.0, 3)


@dataclass
class _Group:
    """One (root cause, channel, handler) group of a sweep, its concatenated columns parsed."""

    root_cause: Optional[str]
    channel: str
    handled_by: str
    contacts: int
    repeated: int
    asked: int
    answered: int
    score_sum: int
    customers: Any
    frt: Any
    aht: Any

    @classmethod
    def parse(cls, row: Any) -> "_Group":
        return cls(row.root_cause, row.channel, row.handled_by, int(row.contacts), int(row.repeated or 0),
                   int(row.asked), int(row.answered), int(row.score_sum or 0), _ints(row.customers),
                   _ints(row.frt), _ints(row.aht))


def _distinct(ids: Any) -> int:
    """How many distinct ids (a bitmap for the usual dense ids, else a sort)."""
    import numpy as np

    if len(ids) == 0:
        return 0
    top = int(ids.max())
    if int(ids.min()) >= 0 and top < 64 * 1024 * 1024:
        seen = np.zeros(top + 1, dtype=bool)
        seen[ids] = True
        return int(np.count_nonzero(seen))
    return len(np.unique(ids))


def _collect(groups: Sequence[_Group]) -> Dict[str, Any]:
    """Sum a set of sweep groups into one row's raw figures."""
    import numpy as np

    answered = sum(g.answered for g in groups)
    customers = np.concatenate([g.customers for g in groups]) if groups else np.empty(0, dtype=np.int64)
    return {
        "contacts": sum(g.contacts for g in groups),
        "bot": sum(g.contacts for g in groups if g.handled_by == "bot"),
        "repeated": sum(g.repeated for g in groups),
        "asked": sum(g.asked for g in groups),
        "answered": answered,
        "score": sum(g.score_sum for g in groups) / answered if answered else None,
        "customers": _distinct(customers),
        "frt": _median_ms([g.frt for g in groups]),
        "aht": _median_ms([g.aht for g in groups]),
    }


def contacts_per_root_cause(session: Session, period: Period,
                            codes: Optional[Sequence[Optional[str]]] = None) -> Dict[Optional[str], int]:
    """``{root_cause: contacts}`` in ``period`` (all root causes, or ``codes``)."""
    if codes is None:
        present, has_null = present_root_causes(session)
        codes = list(present) + ([None] if has_null else [])
    named = [c for c in codes if c is not None]
    result: Dict[Optional[str], int] = {}
    selections = ([Contact.root_cause.in_(named)] if named else []) + ([Contact.root_cause.is_(None)] if None in codes else [])
    for selection in selections:
        rows = session.execute(select(Contact.root_cause, func.count()).where(selection, _in(period))
                               .group_by(Contact.root_cause))
        result.update({code: count for code, count in rows})
    return result


def _figures(agg: Mapping[str, Any], previous: int) -> Dict[str, Any]:
    contacts = int(agg.get("contacts") or 0)
    bot = int(agg.get("bot") or 0)
    repeated = int(agg.get("repeated") or 0)
    asked, answered = int(agg.get("asked") or 0), int(agg.get("answered") or 0)
    score = agg.get("score")
    frt, aht = agg.get("frt"), agg.get("aht")
    return {
        "contacts": contacts,
        "customers": int(agg.get("customers") or 0),
        "previous_contacts": previous,
        "change_pct": change_pct(contacts, previous),
        "trend": trend(contacts, previous),
        "bot_contacts": bot,
        "human_contacts": contacts - bot,
        "bot_share": _ratio(bot, contacts),
        "human_share": _ratio(contacts - bot, contacts),
        "repeated": repeated,
        "repeat_rate": _ratio(repeated, contacts),
        "median_first_response_seconds": None if frt is None else round(float(frt), 3),
        "median_handling_seconds": None if aht is None else round(float(aht), 3),
        "csat_asked": asked,
        "csat_answered": answered,
        "csat_response_rate": _ratio(answered, asked),
        "csat_mean": None if score is None else round(float(score), 3),
    }


def _describe(code: Optional[str], taxonomy: Any, language: str) -> Dict[str, Any]:
    cause = taxonomy.get(code) if taxonomy is not None and code is not None else None
    if code is None:
        title = "No root cause" if language == "en" else "Geen oorzaak"
    else:
        title = cause.title(language) if cause is not None else code
    return {"root_cause": code, "slug": code or NO_ROOT_CAUSE, "title": title,
            "owner": cause.owner if cause is not None else None}


def _csat_rows(groups: Sequence[_Group], key: str) -> List[Dict[str, Any]]:
    acc: Dict[str, List[int]] = {}
    for g in groups:
        figures = acc.setdefault(getattr(g, key), [0, 0, 0, 0])
        figures[0] += g.contacts
        figures[1] += g.asked
        figures[2] += g.answered
        figures[3] += int(g.score_sum or 0)
    return [{"key": k, "contacts": c, "csat_asked": a, "csat_answered": n, "csat_response_rate": _ratio(n, a),
             "csat_mean": round(t / n, 3) if n else None}
            for k, (c, a, n, t) in sorted(acc.items(), key=lambda item: (-item[1][0], item[0]))]


def recurring_issue_report(session: Session, period: Period, taxonomy: Any = None,
                           language: str = "en") -> Dict[str, Any]:
    """The report for ``period`` and its previous period: rows ranked by contacts, totals, CSAT
    per channel and per handler (bot / human)."""
    previous_period = period.previous()
    groups = [_Group.parse(row) for row in _sweep(session, period)]
    previous = contacts_per_root_cause(session, previous_period)
    by_code: Dict[Optional[str], List[_Group]] = {}
    for g in groups:
        by_code.setdefault(g.root_cause, []).append(g)
    rows = []
    for code in set(by_code) | {c for c, n in previous.items() if n}:
        rows.append({**_describe(code, taxonomy, language),
                     **_figures(_collect(by_code.get(code, [])), previous.get(code, 0))})
    rows.sort(key=lambda r: (-r["contacts"], -r["previous_contacts"], r["slug"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    totals = {"root_cause": TOTAL, "slug": TOTAL, "title": "Total", "owner": None,
              **_figures(_collect(groups), sum(previous.values()))}
    return {
        "period": period.as_dict(),
        "previous_period": previous_period.as_dict(),
        "rows": rows,
        "totals": totals,
        "csat": {"by_channel": _csat_rows(groups, "channel"), "by_handler": _csat_rows(groups, "handled_by")},
        "repeat_highlight": REPEAT_HIGHLIGHT,
    }


# --------------------------------------------------------------------------- drill-down


def root_cause_filter(code: Optional[str]) -> Any:
    return Contact.root_cause.is_(None) if code is None else Contact.root_cause == code


def drilldown(session: Session, code: Optional[str], period: Period, page: int = 1,
              page_size: int = PAGE_SIZE) -> Dict[str, Any]:
    """One root cause's contacts in ``period``, newest first, one page at a time."""
    if page < 1:
        raise InvalidInput("page must be 1 or more")
    where = and_(root_cause_filter(code), _in(period))
    total = session.execute(select(func.count()).select_from(Contact).where(where)).scalar_one()
    rows = session.execute(
        select(Contact.id, Contact.conversation_id, Contact.customer_id, Customer.display_name, Contact.channel,
               Contact.language, Contact.started_at, Contact.ended_at, Contact.handled_by,
               Contact.root_cause_source, Contact.first_response_seconds, Contact.handling_seconds,
               Contact.repeated, Contact.repeat_of_id, Contact.csat_asked_at, Contact.csat_score,
               Contact.csat_comment, Contact.case_id)
        .join(Customer, Customer.id == Contact.customer_id)
        .where(where).order_by(Contact.started_at.desc(), Contact.id.desc())
        .limit(page_size).offset((page - 1) * page_size)
    ).all()
    contacts = [{
        "id": r.id,
        "conversation_id": r.conversation_id,
        "customer_id": r.customer_id,
        "customer": r.display_name or f"customer {r.customer_id}",
        "channel": r.channel,
        "language": r.language,
        "started_at": r.started_at.isoformat(),
        "ended_at": r.ended_at.isoformat(),
        "handled_by": r.handled_by,
        "root_cause_source": r.root_cause_source,
        "first_response_seconds": r.first_response_seconds,
        "handling_seconds": r.handling_seconds,
        "repeated": bool(r.repeated),
        "repeat_of_id": r.repeat_of_id,
        "csat_asked": r.csat_asked_at is not None,
        "csat_score": r.csat_score,
        "csat_comment": r.csat_comment,
        "case_id": r.case_id,
    } for r in rows]
    pages = max(1, math.ceil(total / page_size))
    return {"root_cause": code, "period": period.as_dict(), "page": page, "page_size": page_size,
            "pages": pages, "total": total, "contacts": contacts,
            "next_page": page + 1 if page < pages else None, "previous_page": page - 1 if page > 1 else None}


# --------------------------------------------------------------------------- charts


def weekly_counts(session: Session, period: Period, codes: Sequence[Optional[str]]) -> Dict[str, Any]:
    """Contacts per week (weeks from the period's start; the last one may be shorter) of ``codes``."""
    weeks: List[dt.datetime] = []
    moment = period.start
    while moment < period.end:
        weeks.append(moment)
        moment = moment + dt.timedelta(days=7)
    series: Dict[Optional[str], List[int]] = {code: [0] * len(weeks) for code in codes}
    if codes and _is_postgres(session):
        # one (parallel) aggregate with a week number per row
        bucket = case(*[(Contact.started_at < w + dt.timedelta(days=7), i) for i, w in enumerate(weeks)],
                      else_=len(weeks) - 1)
        named = [c for c in codes if c is not None]
        conditions = ([Contact.root_cause.in_(named)] if named else []) + \
            ([Contact.root_cause.is_(None)] if None in codes else [])
        session.execute(text("SET LOCAL jit = off"))
        rows = session.execute(select(Contact.root_cause, bucket.label("week"), func.count())
                               .where(_in(period), or_(*conditions)).group_by(Contact.root_cause, bucket))
        for code, week, count in rows:
            series[code][int(week)] = count
    elif codes:
        for i, week in enumerate(weeks):  # SQLite: one streaming index range per week and root cause
            counts = contacts_per_root_cause(session, Period(week, min(week + dt.timedelta(days=7), period.end)),
                                             list(codes))
            for code, count in counts.items():
                series[code][i] = count
    return {"weeks": [w.date().isoformat() for w in weeks],
            "days": [round((min(w + dt.timedelta(days=7), period.end) - w).total_seconds() / 86400, 2) for w in weeks],
            "series": [{"root_cause": code, "counts": series[code]} for code in codes]}


def chart_data(session: Session, period: Period, top: int = 5, report: Optional[Dict[str, Any]] = None
               ) -> Dict[str, Any]:
    """What the two charts draw: contacts per root cause (now vs before) and per week (top ``top``)."""
    if report is None:
        current = contacts_per_root_cause(session, period)
        previous = contacts_per_root_cause(session, period.previous())
        ranked = sorted(set(current) | set(previous), key=lambda c: (-current.get(c, 0), -previous.get(c, 0), c or ""))
        bars = [{"root_cause": c, "contacts": current.get(c, 0), "previous_contacts": previous.get(c, 0)}
                for c in ranked]
    else:
        bars = [{"root_cause": r["root_cause"], "contacts": r["contacts"],
                 "previous_contacts": r["previous_contacts"]} for r in report["rows"]]
    codes = [b["root_cause"] for b in bars if b["contacts"]][:top]
    return {"bars": bars, "weekly": weekly_counts(session, period, codes)}


# --------------------------------------------------------------------------- CSV

CSV_COLUMNS = (
    "rank", "root_cause", "title", "owner", "contacts", "customers", "previous_contacts", "change_pct", "trend",
    "bot_share", "human_share", "repeated", "repeat_rate", "median_first_response_seconds",
    "median_handling_seconds", "csat_asked", "csat_answered", "csat_response_rate", "csat_mean",
)


def report_csv(report: Mapping[str, Any]) -> str:
    """The report's table as CSV (header, one row per root cause, then the totals row)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in list(report["rows"]) + [dict(report["totals"], rank="")]:
        writer.writerow(["" if row.get(k) is None else row.get(k) for k in CSV_COLUMNS])
    return out.getvalue()


def comments(session: Session, period: Period, codes: Iterable[Optional[str]], limit: int = 3
             ) -> Dict[Optional[str], List[Dict[str, Any]]]:
    """The latest CSAT comments (customers' own words) per root cause in ``period``.

    Each quote carries its ``contact_id``, so that a GDPR erase can find it again wherever a
    digest keeps it (``bot/privacy/gdpr.py``); an erased comment is NULL and never quoted.
    """
    result: Dict[Optional[str], List[Dict[str, Any]]] = {}
    for code in codes:
        rows = session.execute(
            select(Contact.id, Contact.csat_comment, Contact.csat_score, Contact.started_at)
            .where(root_cause_filter(code), _in(period), Contact.csat_comment.is_not(None))
            .order_by(Contact.started_at.desc()).limit(limit)
        ).all()
        result[code] = [{"text": r.csat_comment, "score": r.csat_score, "contact_id": r.id} for r in rows]
    return result
