"""Recurring-issue reports: console pages, the CSV export, the charts and the JSON API.

Process owners and admins only (agents get 403). Periods come from the query string:
``days=7|28|90`` or ``start=YYYY-MM-DD&end=YYYY-MM-DD`` (end excluded, local dates in the
opening-hours time zone); anything else is a 400 with the reason.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, Dict, Optional
from urllib.parse import urlencode

from aiohttp import web

from bot.reporting import recurring_issues as reports
from bot.web.auth import require_role
from bot.web.console.views import _config, _store, render
from bot.errors import InvalidInput, NotFound
from bot.store.models import Role
from bot.web.keys import CASES_KEY

REPORT_ROLES = (Role.process_owner, Role.admin)
ARROWS = {"up": "▲", "down": "▼", "flat": "►", "new": "new", "none": ""}


def _taxonomy(request: web.Request) -> Any:
    return request.app[CASES_KEY].taxonomy


def _default_days(request: web.Request) -> int:
    return _config(request).reports.default_period_days


def _zone(request: web.Request) -> Any:
    return _config(request).opening_hours.timezone


def _period(request: web.Request) -> reports.Period:
    return reports.parse_period(request.query, _zone(request), _default_days(request))


def _period_query(request: web.Request) -> Dict[str, str]:
    """The query string that selects the same period again (for links)."""
    q = request.query
    if q.get("start") or q.get("end"):
        return {"start": q.get("start", ""), "end": q.get("end", "")}
    if q.get("days"):
        return {"days": q["days"]}
    return {}


def _code(request: web.Request) -> Optional[str]:
    slug = request.match_info["root_cause"]
    if slug == reports.NO_ROOT_CAUSE:
        return None
    if slug not in _taxonomy(request) and not slug.replace("_", "").isalnum():
        raise NotFound(f"no root cause {slug!r}")
    return slug


def _page(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidInput(f"page must be a whole number from 1, not {raw!r}")
    return int(raw)


def _title(request: web.Request):  # type: ignore[no-untyped-def]
    taxonomy = _taxonomy(request)

    def title(code: Optional[str]) -> str:
        if code is None:
            return "No root cause"
        cause = taxonomy.get(code)
        return cause.title("en") if cause is not None else code

    return title


def _local_dates(period: reports.Period, zone: Any) -> Dict[str, str]:
    start = period.start.astimezone(zone)
    end = period.end.astimezone(zone)
    return {"start": start.date().isoformat(), "end": end.date().isoformat(),
            "last": (end - dt.timedelta(seconds=1)).date().isoformat()}


# --------------------------------------------------------------------------- console pages


@require_role(*REPORT_ROLES)
async def reports_page(request: web.Request) -> web.Response:
    period = _period(request)
    report = await _store(request).run(reports.recurring_issue_report, period, _taxonomy(request))
    query = _period_query(request)
    suffix = ("?" + urlencode(query)) if query else ""
    return render(request, "reports.html", {
        "report": report,
        "dates": _local_dates(period, _zone(request)),
        "previous_dates": _local_dates(period.previous(), _zone(request)),
        "presets": reports.PRESET_DAYS,
        "selected_days": request.query.get("days") if not (request.query.get("start") or request.query.get("end"))
        else None,
        "default_days": _default_days(request),
        "query": query,
        "suffix": suffix,
        "chart_causes": "/console/reports/chart.png?" + urlencode({**query, "kind": "causes"}),
        "chart_weekly": "/console/reports/chart.png?" + urlencode({**query, "kind": "weekly"}),
        "arrows": ARROWS,
    })


@require_role(*REPORT_ROLES)
async def drilldown_page(request: web.Request) -> web.Response:
    code = _code(request)
    period = _period(request)
    page = await _store(request).run(reports.drilldown, code, period, _page(request))
    query = _period_query(request)
    return render(request, "report_drilldown.html", {
        "title": _title(request)(code),
        "slug": code or reports.NO_ROOT_CAUSE,
        "owner": getattr(_taxonomy(request).get(code), "owner", None) if code else None,
        "result": page,
        "dates": _local_dates(period, _zone(request)),
        "query": query,
        "suffix": ("?" + urlencode(query)) if query else "",
        "page_link": lambda n: "?" + urlencode({**query, "page": n}),
    })


@require_role(*REPORT_ROLES)
async def report_csv(request: web.Request) -> web.Response:
    period = _period(request)
    report = await _store(request).run(reports.recurring_issue_report, period, _taxonomy(request))
    dates = _local_dates(period, _zone(request))
    body = reports.report_csv(report).encode("utf-8")
    return web.Response(body=body, content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="recurring-issues-{dates["start"]}-{dates["last"]}.csv"'})


@require_role(*REPORT_ROLES)
async def chart_png(request: web.Request) -> web.Response:
    from bot.reporting.charts import CHARTS, render_chart  # matplotlib: loaded on the first chart

    kind = request.query.get("kind", "causes")
    if kind not in CHARTS:
        raise InvalidInput(f"kind must be one of {', '.join(CHARTS)}, not {kind!r}")
    period = _period(request)
    data = await _store(request).run(reports.chart_data, period)
    png = await asyncio.get_running_loop().run_in_executor(None, render_chart, kind, data, _title(request))
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "private, max-age=60"})


# --------------------------------------------------------------------------- JSON API


@require_role(*REPORT_ROLES)
async def api_report(request: web.Request) -> web.Response:
    """``GET /api/reports?start=&end=`` (or ``?days=``): the report as JSON."""
    report = await _store(request).run(reports.recurring_issue_report, _period(request), _taxonomy(request))
    return web.json_response(report)


@require_role(*REPORT_ROLES)
async def api_drilldown(request: web.Request) -> web.Response:
    """``GET /api/reports/{root_cause}?start=&end=&page=``: one root cause's contacts, newest first."""
    code = _code(request)
    result = await _store(request).run(reports.drilldown, code, _period(request), _page(request))
    return web.json_response(result)


def setup_report_pages(app: web.Application) -> None:
    """Register the report pages and API (auth and templates are set up by ``setup_console``)."""
    router = app.router
    router.add_get("/console/reports", reports_page, name="console_reports")
    router.add_get("/console/reports.csv", report_csv, name="console_reports_csv")
    router.add_get("/console/reports/chart.png", chart_png, name="console_reports_chart")
    router.add_get("/console/reports/{root_cause}", drilldown_page, name="console_report_drilldown")
    router.add_get("/api/reports", api_report, name="api_reports")
    router.add_get("/api/reports/{root_cause}", api_drilldown, name="api_report_drilldown")
