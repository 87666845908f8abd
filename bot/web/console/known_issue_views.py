"""Console pages for known issues: list, open one, view one, and resolve = announce the fix."""
from __future__ import annotations

from typing import Any, Dict, Optional

from aiohttp import web

from bot.web.middleware import status_of
from bot.outreach import broadcasts
from bot.outreach import known_issues
from bot.web.auth import USER_KEY, require_role
from bot.web.console.views import _see_other, _store, _text_field, render
from bot.errors import InvalidInput, Conflict
from bot.web.api.known_issues import OWNER_ROLES, csv_response, known_issue_id
from bot.web.request_fields import flag, optional_whole_number
from bot.web.keys import CASES_KEY

DONE = {"opened": "Known issue opened: the bot now answers matching questions with its text.",
        "resolved": "Known issue resolved: the fix announcement is on its way."}
ISSUE_FIELDS = ("root_cause", "title", "text_nl", "text_en")
RESOLVE_FIELDS = ("fix_text_nl", "fix_text_en", "window_days", "include_contacted")


def _taxonomy(request: web.Request) -> Any:
    return request.app[CASES_KEY].taxonomy


@require_role(*OWNER_ROLES)
async def issues_page(request: web.Request) -> web.Response:
    data = await _store(request).run(known_issues.list_known_issues, _taxonomy(request))
    return render(request, "known_issues.html", {**data, "flash": None})


def _new_form(request: web.Request, *, error: Optional[str] = None, form: Optional[Dict[str, str]] = None,
              status: int = 200) -> web.Response:
    return render(request, "known_issue_new.html", {
        "root_causes": _taxonomy(request).choices("en"), "error": error, "form": form or {}}, status=status)


@require_role(*OWNER_ROLES)
async def new_page(request: web.Request) -> web.Response:
    return _new_form(request, form={"root_cause": request.query.get("root_cause", "")})


@require_role(*OWNER_ROLES)
async def create(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    fields = {k: _text_field(form, k) or "" for k in ISSUE_FIELDS}
    try:
        result = await _store(request).run(known_issues.open_known_issue, request[USER_KEY], fields["root_cause"],
                                           fields["title"], fields["text_nl"], fields["text_en"],
                                           _taxonomy(request))
    except (InvalidInput, Conflict) as error:
        return _new_form(request, error=error.reason, form=fields, status=status_of(error))
    return _see_other(f"/console/known-issues/{result['id']}?done=opened")


async def _render_issue(request: web.Request, number: int, *, error: Optional[str] = None,
                        form: Optional[Dict[str, str]] = None, status: int = 200) -> web.Response:
    detail = await _store(request).run(known_issues.known_issue_detail, number, _taxonomy(request))
    return render(request, "known_issue.html", {
        "issue": detail, "broadcast": detail["broadcast"], "flash": DONE.get(request.query.get("done") or ""),
        "error": error, "form": form or {"window_days": str(broadcasts.DEFAULT_WINDOW_DAYS)},
        "max_window": broadcasts.MAX_WINDOW_DAYS,
    }, status=status)


@require_role(*OWNER_ROLES)
async def issue_page(request: web.Request) -> web.Response:
    return await _render_issue(request, known_issue_id(request))


@require_role(*OWNER_ROLES)
async def resolve(request: web.Request) -> web.StreamResponse:
    number = known_issue_id(request)
    form = await request.post()
    fields = {k: _text_field(form, k) or "" for k in RESOLVE_FIELDS}
    try:
        window = optional_whole_number(fields["window_days"], "window_days", "a whole number of days")
        include = flag(fields["include_contacted"], "include_contacted")
        await _store(request).run(broadcasts.resolve, number, request[USER_KEY], fields["fix_text_nl"],
                                  fields["fix_text_en"], window, include)
    except (InvalidInput, Conflict) as error:
        return await _render_issue(request, number, error=error.reason, form=fields, status=status_of(error))
    return _see_other(f"/console/known-issues/{number}?done=resolved")


@require_role(*OWNER_ROLES)
async def report_csv(request: web.Request) -> web.Response:
    return await csv_response(request, known_issue_id(request))


def setup_known_issue_pages(app: web.Application) -> None:
    """Register the known-issue pages (auth and templates are set up by :func:`setup_console`)."""
    router = app.router
    router.add_get("/console/known-issues", issues_page, name="console_known_issues")
    router.add_post("/console/known-issues", create, name="console_known_issue_create")
    router.add_get("/console/known-issues/new", new_page, name="console_known_issue_new")
    router.add_get("/console/known-issues/{id}", issue_page, name="console_known_issue")
    router.add_post("/console/known-issues/{id}/resolve", resolve, name="console_known_issue_resolve")
    router.add_get("/console/known-issues/{id}/report.csv", report_csv, name="console_known_issue_report")
