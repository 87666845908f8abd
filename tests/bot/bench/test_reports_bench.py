"""``webcare bench reports``: a small run on SQLite and PostgreSQL prints the contract's JSON
(timings are never asserted), and the generator's repeat flags follow the 7-day rule."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Dict

import pytest

from bot.bench.reports import generate
from bot.cli import main
from tests.conftest import POSTGRES_SERVER

QUERIES = {"report_28d", "report_90d", "drilldown_first_page", "csv_export_28d", "chart_data_28d",
           "chart_data_90d", "weekly_digest"}


def run(capsys: pytest.CaptureFixture, *extra: str) -> Dict[str, Any]:
    assert main(["bench", "reports", "--contacts", "2000", "--repeats", "1", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def check(result: Dict[str, Any], database: str) -> None:
    assert result["contacts"] == 2000 and result["database"] == database
    assert set(result["queries"]) == QUERIES
    assert all(isinstance(v, float) and v >= 0 for v in result["queries"].values())
    assert result["max_seconds"] == max(result["queries"].values())
    assert set(result["runs"]) == QUERIES and all(len(r) == 1 for r in result["runs"].values())
    assert result["customers"] == 666 and 0 < result["contacts_28d"] < result["contacts_90d"] < 2000
    assert 0 < result["repeat_rate_28d"] < 1


def test_bench_reports_on_sqlite(capsys: pytest.CaptureFixture) -> None:
    check(run(capsys), "sqlite")


def test_bench_reports_on_postgresql(capsys: pytest.CaptureFixture) -> None:
    import psycopg2
    from sqlalchemy.engine import make_url

    server = make_url(POSTGRES_SERVER)

    def bench_databases() -> set:
        with psycopg2.connect(dbname="postgres", host=server.host, port=server.port or 5432,
                              user=server.username) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE 'webcare_bench_reports_%'")
            return {row[0] for row in cursor.fetchall()}

    before = bench_databases()
    check(run(capsys, "--database-url", POSTGRES_SERVER), "postgresql")
    assert bench_databases() <= before  # its database was dropped


def test_generated_repeat_flags_follow_the_seven_day_rule() -> None:
    end = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    data = generate(3000, ["a", "b", "c", "d"], end)
    start, ended = data["start"].tolist(), data["ended"].tolist()
    contacts = sorted(range(3000), key=lambda i: start[i])
    assert [start[i] for i in contacts] == sorted(start)
    last: Dict[tuple, int] = {}
    repeated = [False] * 3000
    repeat_of = [0] * 3000
    for i in contacts:  # bot/customers/contacts.py's rule, one contact at a time
        key = (int(data["customer"][i]), int(data["cause"][i]))
        earlier = last.get(key)
        if earlier is not None and ended[earlier] >= start[i] - dt.timedelta(days=7):
            repeated[earlier] = True
            repeat_of[i] = earlier + 1
        last[key] = i
    assert data["repeated"].tolist() == repeated and data["repeat_of"].tolist() == repeat_of
    assert 0.1 < sum(repeated) / 3000 < 0.4
    counts = [int((data["cause"] == k).sum()) for k in range(4)]
    assert counts == sorted(counts, reverse=True)  # skewed: the first root causes dominate
    answered = data["answered"].sum() / data["asked"].sum()
    assert data["asked"].mean() > 0.8 and 0.25 < answered < 0.35
    assert all(s < end.replace(tzinfo=None) for s in start)
