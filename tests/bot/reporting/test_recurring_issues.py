"""The recurring-issue report: every figure on a hand-made set (SQLite and PostgreSQL), the
periods, the drill-down, the CSV export, the charts, and the console/API routes with roles."""
from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any, Iterator

import pytest

from bot.reporting import recurring_issues as reports
from bot.errors import InvalidInput
from bot.cases.root_causes import load_taxonomy
from bot.store.database import Store
from bot.store.models import Contact
from tests.bot.console_support import (  # noqa: F401  (app_client is a fixture)
    api_login,
    app_client,
    console_login,
    store_of,
)
from tests.bot.report_support import PERIOD, ZONE, seed_contacts
from tests.conftest import PROJECT, fresh_store

TAXONOMY = load_taxonomy(PROJECT / "data" / "root_causes.yml")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    yield from fresh_store(request.param, tmp_path, "webcare_reports")


def by_code(report: dict) -> dict:
    return {row["root_cause"]: row for row in report["rows"]}


# --------------------------------------------------------------------------- the figures


def test_every_figure_of_the_report_on_a_hand_made_set(store: Store) -> None:
    store.transaction(seed_contacts)
    report = store.transaction(reports.recurring_issue_report, PERIOD, TAXONOMY)
    rows = by_code(report)
    assert [r["root_cause"] for r in report["rows"]] == ["billing_amount", "outage", None, "moving"]
    assert [r["rank"] for r in report["rows"]] == [1, 2, 3, 4]

    billing = rows["billing_amount"]
    assert billing["title"] == "Bill amount" and billing["owner"] == "billing"
    assert billing["contacts"] == 4 and billing["customers"] == 3
    assert billing["previous_contacts"] == 2 and billing["change_pct"] == 100.0 and billing["trend"] == "up"
    assert billing["bot_contacts"] == 2 and billing["human_contacts"] == 2
    assert billing["bot_share"] == 0.5 and billing["human_share"] == 0.5
    # c1 (repeated within the period) and c3 (its repeat falls after the period's end) both count
    assert billing["repeated"] == 2 and billing["repeat_rate"] == 0.5
    assert billing["median_first_response_seconds"] == 32.0  # 2, 4, 60, 120
    assert billing["median_handling_seconds"] == 400.0  # 100, 200, 600, 900
    assert billing["csat_asked"] == 3 and billing["csat_answered"] == 2
    assert billing["csat_response_rate"] == 0.6667 and billing["csat_mean"] == 3.0

    outage = rows["outage"]
    assert (outage["contacts"], outage["customers"], outage["previous_contacts"]) == (2, 1, 4)
    assert outage["change_pct"] == -50.0 and outage["trend"] == "down"
    assert outage["bot_share"] == 1.0 and outage["repeat_rate"] == 0.0
    assert outage["median_first_response_seconds"] == 2.0 and outage["median_handling_seconds"] == 60.0
    assert (outage["csat_asked"], outage["csat_answered"], outage["csat_mean"]) == (1, 1, 5.0)

    none = rows[None]
    assert none["slug"] == "none" and none["title"] == "No root cause"
    assert none["contacts"] == 1 and none["previous_contacts"] == 0 and none["trend"] == "new"
    assert none["median_first_response_seconds"] is None and none["median_handling_seconds"] == 30.0
    assert none["csat_response_rate"] is None and none["csat_mean"] is None

    moving = rows["moving"]  # only in the previous period
    assert moving["contacts"] == 0 and moving["previous_contacts"] == 1
    assert moving["change_pct"] == -100.0 and moving["trend"] == "down" and moving["repeat_rate"] is None

    totals = report["totals"]
    assert totals["contacts"] == 7 and totals["customers"] == 5
    assert totals["previous_contacts"] == 7 and totals["change_pct"] == 0.0 and totals["trend"] == "flat"
    assert totals["bot_contacts"] == 4 and totals["bot_share"] == 0.5714
    assert totals["repeated"] == 2 and totals["repeat_rate"] == 0.2857
    assert totals["median_first_response_seconds"] == 3.5  # 1, 2, 3, 4, 60, 120
    assert totals["median_handling_seconds"] == 100.0  # 30, 50, 70, 100, 200, 600, 900
    assert (totals["csat_asked"], totals["csat_answered"]) == (4, 3)
    assert totals["csat_response_rate"] == 0.75 and totals["csat_mean"] == 3.667

    channels = {c["key"]: c for c in report["csat"]["by_channel"]}
    assert channels["telegram"] == {"key": "telegram", "contacts": 3, "csat_asked": 3, "csat_answered": 2,
                                    "csat_response_rate": 0.6667, "csat_mean": 3.5}
    assert channels["webchat"] == {"key": "webchat", "contacts": 3, "csat_asked": 1, "csat_answered": 1,
                                   "csat_response_rate": 1.0, "csat_mean": 4.0}
    assert channels["webhook"]["csat_asked"] == 0 and channels["webhook"]["csat_mean"] is None
    handlers = {c["key"]: c for c in report["csat"]["by_handler"]}
    assert (handlers["bot"]["contacts"], handlers["bot"]["csat_asked"], handlers["bot"]["csat_answered"],
            handlers["bot"]["csat_mean"]) == (4, 3, 3, 3.667)
    assert (handlers["human"]["contacts"], handlers["human"]["csat_asked"], handlers["human"]["csat_answered"]) \
        == (3, 1, 0)
    assert report["period"]["days"] == 7 and report["previous_period"]["end"] == report["period"]["start"]


def test_an_empty_store_gives_an_empty_report(store: Store) -> None:
    report = store.transaction(reports.recurring_issue_report, PERIOD, TAXONOMY)
    assert report["rows"] == [] and report["totals"]["contacts"] == 0
    assert report["totals"]["repeat_rate"] is None and report["totals"]["median_handling_seconds"] is None


def test_drilldown_is_newest_first_and_paginated(store: Store) -> None:
    ids = store.transaction(seed_contacts)
    first = store.transaction(reports.drilldown, "billing_amount", PERIOD, 1, 3)
    assert first["total"] == 4 and first["pages"] == 2 and first["next_page"] == 2 and first["previous_page"] is None
    assert [c["id"] for c in first["contacts"]] == [ids["c3"], ids["c4"], ids["c2"]]
    c2 = first["contacts"][2]
    assert c2["case_id"] == ids["case"] and c2["customer"] == "Klant A" and c2["handled_by"] == "human"
    assert c2["first_response_seconds"] == 60 and c2["csat_asked"] and c2["csat_score"] is None
    second = store.transaction(reports.drilldown, "billing_amount", PERIOD, 2, 3)
    assert [c["id"] for c in second["contacts"]] == [ids["c1"]] and second["next_page"] is None
    assert second["contacts"][0]["repeated"] and second["contacts"][0]["csat_comment"] == "Weer een te hoge rekening"
    none = store.transaction(reports.drilldown, None, PERIOD)
    assert [c["id"] for c in none["contacts"]] == [ids["n1"]]


def test_chart_data_and_weekly_counts(store: Store) -> None:
    store.transaction(seed_contacts)
    data = store.transaction(reports.chart_data, PERIOD)
    bars = {b["root_cause"]: (b["contacts"], b["previous_contacts"]) for b in data["bars"]}
    assert bars == {"billing_amount": (4, 2), "outage": (2, 4), None: (1, 0), "moving": (0, 1)}
    assert data["weekly"]["weeks"] == ["2026-03-02"]  # local dates
    series = {s["root_cause"]: s["counts"] for s in data["weekly"]["series"]}
    assert series == {"billing_amount": [4], "outage": [2], None: [1]}
    two_weeks = reports.Period(PERIOD.start - dt.timedelta(days=7), PERIOD.end)
    weekly = store.transaction(reports.weekly_counts, two_weeks, ["billing_amount", "outage"])
    assert [s["counts"] for s in weekly["series"]] == [[2, 4], [4, 2]]


def test_csv_has_the_table_rows_and_the_totals(store: Store) -> None:
    store.transaction(seed_contacts)
    text = reports.report_csv(store.transaction(reports.recurring_issue_report, PERIOD, TAXONOMY))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(reports.CSV_COLUMNS)
    assert [r["root_cause"] for r in rows] == ["billing_amount", "outage", "", "moving", "TOTAL"]
    assert rows[0]["contacts"] == "4" and rows[0]["repeat_rate"] == "0.5" and rows[0]["median_handling_seconds"] == "400.0"
    assert rows[0]["change_pct"] == "100.0" and rows[0]["trend"] == "up" and rows[0]["csat_mean"] == "3.0"
    assert rows[-1]["title"] == "Total" and rows[-1]["contacts"] == "7" and rows[-1]["rank"] == ""


def test_repeat_flags_written_by_contacts_give_the_same_rate(tmp_path: Path) -> None:
    """The stored flag is what counts: a repeat after the period still marks the earlier contact."""
    store = Store.from_url(f"sqlite:///{tmp_path}/r.db")
    try:
        ids = store.transaction(seed_contacts)
        store.transaction(lambda s: setattr(s.get(Contact, ids["c3"]), "repeated", False))
        report = store.transaction(reports.recurring_issue_report, PERIOD, TAXONOMY)
        assert by_code(report)["billing_amount"]["repeat_rate"] == 0.25
    finally:
        store.close()


# --------------------------------------------------------------------------- periods


NOW = dt.datetime(2026, 3, 10, 15, tzinfo=dt.timezone.utc)


def test_periods_from_the_query() -> None:
    default = reports.parse_period({}, ZONE, 28, NOW)
    assert default.start == dt.datetime(2026, 2, 11, tzinfo=ZONE) and default.end == dt.datetime(2026, 3, 11, tzinfo=ZONE)
    assert reports.parse_period({"days": "7"}, ZONE, 28, NOW).start == dt.datetime(2026, 3, 4, tzinfo=ZONE)
    custom = reports.parse_period({"start": "2026-03-02", "end": "2026-03-09"}, ZONE, 28, NOW)
    assert custom == PERIOD and custom.previous().start == dt.datetime(2026, 2, 23, tzinfo=ZONE)
    exact = reports.parse_period({"start": "2026-03-02T10:00:00+00:00", "end": "2026-03-02T12:00:00Z"}, ZONE)
    assert exact.length == dt.timedelta(hours=2)


@pytest.mark.parametrize("query, reason", [
    ({"start": "2026-13-01", "end": "2026-03-09"}, "start must be a date"),
    ({"start": "2026-03-09", "end": "2026-03-02"}, "must be after start"),
    ({"start": "2026-03-02", "end": "2026-03-02"}, "must be after start"),
    ({"start": "2026-03-02"}, "give both start and end"),
    ({"start": "2020-01-01", "end": "2026-01-01"}, "at most"),
    ({"days": "abc"}, "days must be a whole number"),
    ({"days": "0"}, "days must be a whole number"),
])
def test_bad_periods_are_refused_with_a_reason(query: dict, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        reports.parse_period(query, ZONE, 28, NOW)


# --------------------------------------------------------------------------- console and API

REPORT_URLS = ["/console/reports", "/console/reports.csv", "/console/reports/chart.png",
               "/console/reports/billing_amount", "/api/reports", "/api/reports/billing_amount"]
Q = "start=2026-03-02&end=2026-03-09"


async def test_agents_may_not_see_reports(app_client: Any) -> None:
    await api_login(app_client, "anna")
    for url in REPORT_URLS:
        response = await app_client.get(url)
        assert response.status == 403, url


async def test_logged_out_users_are_sent_to_the_login(app_client: Any) -> None:
    response = await app_client.get("/api/reports")
    assert response.status == 401
    page = await app_client.get("/console/reports", allow_redirects=False)
    assert page.status in (302, 303) and "/console/login" in page.headers["Location"]


async def test_report_page_shows_the_ranked_table(app_client: Any) -> None:
    ids = store_of(app_client).transaction(seed_contacts)
    await console_login(app_client, "piet")
    response = await app_client.get(f"/console/reports?{Q}")
    html = await response.text()
    assert response.status == 200
    assert html.index("Bill amount") < html.index("Outage") < html.index("No root cause")
    q = Q.replace("&", "&amp;")  # escaped in the HTML
    assert f'href="/console/reports/billing_amount?{q}"' in html and f'href="/console/reports/none?{q}"' in html
    assert "▲ +100%" in html and "▼ -50%" in html
    assert "repeat-hot" in html  # billing_amount's 50% repeat rate is highlighted
    assert f'src="/console/reports/chart.png?{q}&amp;kind=causes"' in html
    assert f'href="/console/reports.csv?{q}"' in html
    assert "telegram" in html and "2026-03-02 – 2026-03-08" in html
    drill = await app_client.get(f"/console/reports/billing_amount?{Q}")
    text = await drill.text()
    assert drill.status == 200 and f'href="/console/cases/{ids["case"]}"' in text
    assert "Weer een te hoge rekening" in text and "4 contacts" in text
    admin_page = await app_client.get("/console/reports?days=7")
    assert admin_page.status == 200


async def test_admin_gets_the_json_api(app_client: Any) -> None:
    ids = store_of(app_client).transaction(seed_contacts)
    await api_login(app_client, "ada")
    report = await (await app_client.get(f"/api/reports?{Q}")).json()
    assert report["totals"]["contacts"] == 7 and report["rows"][0]["root_cause"] == "billing_amount"
    assert report["rows"][0]["repeat_rate"] == 0.5
    drill = await app_client.get(f"/api/reports/billing_amount?{Q}&page=1")
    body = await drill.json()
    assert drill.status == 200 and body["total"] == 4 and body["contacts"][0]["id"] == ids["c3"]
    none = await (await app_client.get(f"/api/reports/none?{Q}")).json()
    assert none["total"] == 1 and none["root_cause"] is None


async def test_bad_dates_are_a_400_with_a_reason(app_client: Any) -> None:
    await api_login(app_client, "piet")
    for query in ("start=2026-03-09&end=2026-03-02", "start=yesterday&end=2026-03-02", "days=-3", "start=2026-03-01"):
        response = await app_client.get(f"/api/reports?{query}")
        body = await response.json()
        assert response.status == 400 and body["error"] == "bad_request" and body["reason"], query
    assert (await app_client.get(f"/api/reports/billing_amount?{Q}&page=0")).status == 400
    assert (await app_client.get(f"/console/reports.csv?end=2026-03-02")).status == 400
    assert (await app_client.get(f"/console/reports/chart.png?{Q}&kind=pie")).status == 400
    page = await app_client.get("/console/reports?start=2026-03-09&end=2026-03-01", headers={"Accept": "text/html"})
    assert page.status == 400 and "must be after start" in await page.text()


async def test_csv_export(app_client: Any) -> None:
    store_of(app_client).transaction(seed_contacts)
    await console_login(app_client, "piet")
    response = await app_client.get(f"/console/reports.csv?{Q}")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="recurring-issues-2026-03-02-2026-03-08.csv"' in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO((await response.read()).decode("utf-8"))))
    assert [(r["root_cause"], r["contacts"], r["customers"], r["repeat_rate"]) for r in rows] == [
        ("billing_amount", "4", "3", "0.5"), ("outage", "2", "1", "0.0"), ("", "1", "1", "0.0"),
        ("moving", "0", "0", ""), ("TOTAL", "7", "5", "0.2857")]
    assert rows[0]["title"] == "Bill amount" and rows[2]["title"] == "No root cause"


async def test_charts_are_png_images_drawn_by_matplotlib(app_client: Any) -> None:
    import matplotlib.image

    store_of(app_client).transaction(seed_contacts)
    await console_login(app_client, "piet")
    for kind in ("causes", "weekly"):
        response = await app_client.get(f"/console/reports/chart.png?{Q}&kind={kind}")
        png = await response.read()
        assert response.status == 200 and response.headers["Content-Type"] == "image/png"
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"Software" in png and b"matplotlib" in png  # the tEXt chunk matplotlib wrote
        pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
        assert pixels.shape[1] == 800 and pixels.shape[0] > 200
        assert len({tuple(p) for p in pixels[::7, ::7].reshape(-1, pixels.shape[2])}) > 5  # something drawn
