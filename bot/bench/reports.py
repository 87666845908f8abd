"""``webcare bench reports``: synthetic contacts in a fresh store, then every report query timed.

N contacts over the 12 months before today (UTC) with a realistic skew: root causes
Zipf-like (a few dominate), about N/3 customers who come back with the same root cause (the
``repeated`` / ``repeat_of_id`` flags follow the 7-day rule of ``bot/customers/contacts.py``), a bot /
human mix per root cause, CSAT asked on most contacts and answered on about 30 % of those.

Loading is bulk: SQLite gets ``executemany`` on the raw connection in chunks, PostgreSQL gets
``COPY``. Then ``ANALYZE`` (PostgreSQL: ``VACUUM ANALYZE``, as autovacuum would after a load).
Each query runs ``repeats`` times; ``queries`` holds the median, ``runs`` every run.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from sqlalchemy.engine import Engine, make_url

from bot.store.database import fresh_postgres_database
from bot.reporting.recurring_issues import (
    Period,
    chart_data,
    drilldown,
    last_days,
    recurring_issue_report,
    report_csv,
)

CHANNELS = ("telegram", "webchat", "webhook")
CHANNEL_WEIGHTS = (0.5, 0.35, 0.15)
REPEAT_WINDOW = dt.timedelta(days=7)
COMMENTS = {
    1: ["Ik heb dit al drie keer gevraagd", "Nog steeds niet opgelost", "Niemand belt terug"],
    2: ["Duurde te lang", "Antwoord hielp niet echt", "Weer hetzelfde probleem"],
    3: ["Ging wel", "Redelijk snel", "Ok, maar onduidelijk"],
    4: ["Snel geholpen", "Duidelijk antwoord", "Prima"],
    5: ["Top, dank je!", "Super snel opgelost", "Heel vriendelijk"],
}
CHUNK = 50_000


# --------------------------------------------------------------------------- generation


def generate(n: int, codes: Sequence[str], end: dt.datetime, seed: int = 6) -> Dict[str, Any]:
    """Column arrays of ``n`` contacts and their customers (numpy, sorted by start time)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n_customers = max(1, n // 3)
    k = len(codes)
    weights = 1.0 / np.arange(1, k + 1) ** 1.1
    weights /= weights.sum()
    repeat_propensity = rng.uniform(0.08, 0.45, k)
    bot_share = rng.uniform(0.35, 0.85, k)
    end_us = np.datetime64(end.replace(tzinfo=None), "us")
    year_us = np.int64(365 * 86400 * 1_000_000)

    n_base = max(1, int(round(n * 0.78)))
    n_follow = n - n_base
    base_customer = rng.integers(0, n_customers, n_base)
    base_cause = rng.choice(k, n_base, p=weights)
    # time of day: busier in office hours
    day = rng.integers(0, 365, n_base)
    seconds = rng.normal(14 * 3600, 4 * 3600, n_base).clip(0, 86399)
    base_offset = day.astype(np.int64) * 86400 * 1_000_000 + (seconds * 1_000_000).astype(np.int64)
    base_start = end_us - year_us + base_offset.astype("timedelta64[us]")

    p = repeat_propensity[base_cause]
    parent = rng.choice(n_base, n_follow, p=p / p.sum()) if n_follow else np.empty(0, dtype=np.int64)
    within = rng.random(n_follow) < 0.75
    gap_seconds = np.where(within, rng.uniform(1800, 6.9 * 86400, n_follow), rng.uniform(7.2 * 86400, 25 * 86400, n_follow))
    gap = (gap_seconds * 1_000_000).astype(np.int64).astype("timedelta64[us]")
    follow_start = base_start[parent] + gap
    late = follow_start >= end_us
    follow_start[late] = base_start[parent][late] - gap[late]

    customer = np.concatenate([base_customer, base_customer[parent]])
    cause = np.concatenate([base_cause, base_cause[parent]])
    start = np.concatenate([base_start, follow_start])
    order = np.argsort(start, kind="stable")
    customer, cause, start = customer[order], cause[order], start[order]

    bot = rng.random(n) < bot_share[cause]
    first_response = np.where(bot, rng.uniform(0.5, 4.0, n), rng.lognormal(np.log(240), 0.8, n)).round(3)
    handling = np.where(bot, rng.lognormal(np.log(180), 0.6, n), rng.lognormal(np.log(900), 0.7, n)).round(3)
    ended = start + (handling * 1_000_000).astype(np.int64).astype("timedelta64[us]")

    # Repeat flags, as bot/customers/contacts.py sets them: the same customer's previous contact with the
    # same root cause that ended within 7 days before this one started.
    ids = np.arange(1, n + 1)
    by_key = np.lexsort((start, cause, customer))
    same = (customer[by_key][1:] == customer[by_key][:-1]) & (cause[by_key][1:] == cause[by_key][:-1])
    close = ended[by_key][:-1] >= start[by_key][1:] - np.timedelta64(7 * 86400 * 1_000_000, "us")
    hit = same & close
    repeated = np.zeros(n, dtype=bool)
    repeated[by_key[:-1][hit]] = True
    repeat_of = np.zeros(n, dtype=np.int64)
    repeat_of[by_key[1:][hit]] = ids[by_key[:-1][hit]]

    asked = rng.random(n) < 0.85
    answered = asked & (rng.random(n) < 0.30)
    score_probs = np.array([[0.06, 0.08, 0.16, 0.36, 0.34], [0.25, 0.25, 0.25, 0.15, 0.10]])
    good = rng.choice(5, n, p=score_probs[0]) + 1
    bad = rng.choice(5, n, p=score_probs[1]) + 1
    score = np.where(repeated, bad, good)
    commented = answered & (rng.random(n) < 0.12)
    comment_pick = rng.integers(0, 3, n)
    asked_at = ended + np.timedelta64(60_000_000, "us")
    answered_at = asked_at + (rng.uniform(10, 600, n) * 1_000_000).astype(np.int64).astype("timedelta64[us]")

    customer_channel = rng.choice(len(CHANNELS), n_customers, p=CHANNEL_WEIGHTS)
    customer_language = np.where(rng.random(n_customers) < 0.8, "nl", "en")
    source = np.where(bot, "bot", np.where(rng.random(n) < 0.85, "agent", "suggested"))
    return {
        "n": n, "n_customers": n_customers, "codes": list(codes),
        "customer": customer, "cause": cause, "start": start, "ended": ended, "bot": bot,
        "first_response": first_response, "handling": handling, "repeated": repeated, "repeat_of": repeat_of,
        "asked": asked, "answered": answered, "score": score, "commented": commented,
        "comment_pick": comment_pick, "asked_at": asked_at, "answered_at": answered_at,
        "customer_channel": customer_channel, "customer_language": customer_language, "source": source,
        "messages": rng.poisson(2, n) + 1, "end": end,
    }


def _times(values: Any, postgres: bool) -> List[str]:
    import numpy as np

    text = np.datetime_as_string(values, unit="us")
    text = np.char.replace(text, "T", " ")
    if postgres:
        text = np.char.add(text, "+00")
    return text.tolist()


def _tables(data: Dict[str, Any], postgres: bool) -> Iterator[Tuple[str, List[str], Any]]:
    """(table, columns, rows iterator factory) in foreign-key order."""
    m = data["n_customers"]
    created = data["end"] - dt.timedelta(days=400)
    created_text = created.strftime("%Y-%m-%d %H:%M:%S.%f") + ("+00" if postgres else "")
    customer_ids = list(range(1, m + 1))
    languages = data["customer_language"].tolist()
    channels = [CHANNELS[i] for i in data["customer_channel"].tolist()]
    flags = "[]"
    yield ("customers", ["id", "display_name", "language", "flags", "created_at"],
           lambda: zip(customer_ids, (f"Klant {i}" for i in customer_ids), languages, [flags] * m, [created_text] * m))
    false = "f" if postgres else 0
    true = "t" if postgres else 1
    yield ("channel_identities", ["id", "customer_id", "channel", "external_id", "display_name", "reachable",
                                  "created_at"],
           lambda: zip(customer_ids, customer_ids, channels, (str(100000 + i) for i in customer_ids),
                       (f"Klant {i}" for i in customer_ids), [true] * m, [created_text] * m))
    yield ("conversations", ["id", "customer_id", "identity_id", "channel", "rasa_sender_id", "mode", "language",
                             "created_at", "last_message_at", "contact_watermark"],
           lambda: zip(customer_ids, customer_ids, customer_ids, channels,
                       (f"{c}:{100000 + i}" for c, i in zip(channels, customer_ids)), ["bot"] * m, languages,
                       [created_text] * m, [created_text] * m, [0] * m))

    n = data["n"]
    customer = (data["customer"] + 1).tolist()
    contact_channel = [channels[c - 1] for c in customer]
    contact_language = [languages[c - 1] for c in customer]
    codes = data["codes"]
    cause = [codes[i] for i in data["cause"].tolist()]
    start, ended = _times(data["start"], postgres), _times(data["ended"], postgres)
    asked_at, answered_at = _times(data["asked_at"], postgres), _times(data["answered_at"], postgres)
    asked, answered = data["asked"].tolist(), data["answered"].tolist()
    score = data["score"].tolist()
    commented = data["commented"].tolist()
    picks = data["comment_pick"].tolist()
    repeated = [true if r else false for r in data["repeated"].tolist()]
    repeat_of = [r or None for r in data["repeat_of"].tolist()]
    handled = ["bot" if b else "human" for b in data["bot"].tolist()]
    columns = ["id", "conversation_id", "customer_id", "channel", "language", "started_at", "ended_at",
               "customer_messages", "root_cause", "root_cause_source", "handled_by", "first_response_seconds",
               "handling_seconds", "repeat_of_id", "repeated", "csat_asked_at", "csat_score", "csat_comment",
               "csat_answered_at"]

    def rows() -> Iterator[tuple]:
        ids = range(1, n + 1)
        return zip(ids, customer, customer, contact_channel, contact_language, start, ended,
                   data["messages"].tolist(), cause, data["source"].tolist(), handled,
                   data["first_response"].tolist(), data["handling"].tolist(), repeat_of, repeated,
                   [a if k else None for a, k in zip(asked_at, asked)],
                   [s if k else None for s, k in zip(score, answered)],
                   [COMMENTS[s][p] if c else None for s, p, c in zip(score, picks, commented)],
                   [a if k else None for a, k in zip(answered_at, answered)])
    yield ("contacts", columns, rows)


def load(engine: Engine, data: Dict[str, Any]) -> None:
    """Bulk-load the generated rows (executemany on SQLite, COPY on PostgreSQL)."""
    postgres = engine.dialect.name == "postgresql"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for table, columns, rows in _tables(data, postgres):
            if postgres:
                _copy(cursor, table, columns, rows())
            else:
                sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
                iterator = rows()
                while True:
                    chunk = list(_take(iterator, CHUNK))
                    if not chunk:
                        break
                    cursor.executemany(sql, chunk)
        if postgres:
            for table in ("customers", "channel_identities", "conversations", "contacts"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT COALESCE(MAX(id), 1) FROM {table}))")
        raw.commit()
        if postgres:
            raw.set_isolation_level(0)  # autocommit, for VACUUM
            cursor.execute("VACUUM ANALYZE")
        else:
            cursor.execute("ANALYZE")
            raw.commit()
        cursor.close()
    finally:
        raw.close()


def _take(iterator: Iterator[Any], count: int) -> Iterator[Any]:
    for _ in range(count):
        try:
            yield next(iterator)
        except StopIteration:
            return


def _copy(cursor: Any, table: str, columns: List[str], rows: Iterator[tuple]) -> None:
    import csv

    while True:
        chunk = list(_take(rows, 200_000))
        if not chunk:
            return
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for row in chunk:
            writer.writerow(["\\N" if v is None else v for v in row])
        buffer.seek(0)
        cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buffer)


# --------------------------------------------------------------------------- stores


@contextlib.contextmanager
def fresh_database(database_url: Optional[str]) -> Iterator[str]:
    """A fresh, empty database: a temporary SQLite file, or a new PostgreSQL database on the
    server of ``database_url`` (dropped afterwards)."""
    if not database_url or make_url(database_url).get_backend_name() == "sqlite":
        with tempfile.TemporaryDirectory(prefix="webcare-bench-reports-") as folder:
            yield f"sqlite:///{Path(folder) / 'reports.db'}"
        return
    with fresh_postgres_database(database_url, "webcare_bench_reports") as url:
        yield url


# --------------------------------------------------------------------------- running


def _timed(fn: Callable[[], Any], repeats: int) -> List[float]:
    runs = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        runs.append(round(time.perf_counter() - began, 4))
    return runs


def run_reports_bench(contacts: int, database_url: Optional[str] = None, repeats: int = 3,
                      taxonomy_file: Optional[Path] = None, seed: int = 6) -> Dict[str, Any]:
    """Generate, load and time every report query; return the JSON-ready result."""
    from bot.reporting.digest import build_digests
    from bot.cases.root_causes import load_taxonomy
    from bot.store.database import Store

    if contacts < 1:
        raise ValueError("--contacts must be 1 or more")
    taxonomy = load_taxonomy(taxonomy_file or Path(__file__).resolve().parents[2] / "data" / "root_causes.yml")
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Europe/Amsterdam")  # the default opening-hours time zone
    now = dt.datetime.now(dt.timezone.utc)
    end = now.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    with fresh_database(database_url) as url:
        store = Store.from_url(url)
        try:
            began = time.perf_counter()
            data = generate(contacts, taxonomy.codes, end, seed)
            generate_seconds = time.perf_counter() - began
            began = time.perf_counter()
            load(store.engine, data)
            load_seconds = time.perf_counter() - began
            period28, period90 = last_days(28, zone, now), last_days(90, zone, now)
            report28 = store.transaction(recurring_issue_report, period28, taxonomy)
            top = report28["rows"][0]["root_cause"] if report28["rows"] else taxonomy.codes[0]
            today = now.astimezone(zone).date()
            queries: Dict[str, Callable[[], Any]] = {
                "report_28d": lambda: store.transaction(recurring_issue_report, period28, taxonomy),
                "report_90d": lambda: store.transaction(recurring_issue_report, period90, taxonomy),
                "drilldown_first_page": lambda: store.transaction(drilldown, top, period28, 1),
                "csv_export_28d": lambda: report_csv(store.transaction(recurring_issue_report, period28, taxonomy)),
                "chart_data_28d": lambda: store.transaction(chart_data, period28),
                "chart_data_90d": lambda: store.transaction(chart_data, period90),
                "weekly_digest": lambda: store.transaction(build_digests, taxonomy, today, zone),
            }
            runs: Dict[str, List[float]] = {}
            timings: Dict[str, float] = {}
            for name, fn in queries.items():
                runs[name] = _timed(fn, max(1, repeats))
                timings[name] = round(statistics.median(runs[name]), 4)
            counts = store.transaction(_counts, period28)
            return {
                "contacts": contacts,
                "database": "postgresql" if store.engine.dialect.name == "postgresql" else "sqlite",
                "customers": data["n_customers"],
                "root_causes": len(taxonomy.codes),
                "generate_seconds": round(generate_seconds, 2),
                "load_seconds": round(load_seconds, 2),
                "queries": timings,
                "runs": runs,
                "max_seconds": max(timings.values()),
                "repeats": repeats,
                "contacts_28d": counts["contacts"],
                "contacts_90d": store.transaction(_counts, period90)["contacts"],
                "repeat_rate_28d": report28["totals"]["repeat_rate"],
                "top_root_cause_28d": top,
            }
        finally:
            store.close()


def _counts(session: Any, period: Period) -> Dict[str, int]:
    from sqlalchemy import func, select

    from bot.store.models import Contact

    total = session.execute(select(func.count()).select_from(Contact).where(
        Contact.started_at >= period.start, Contact.started_at < period.end)).scalar_one()
    return {"contacts": total}
