"""The JSON API for known issues and their fix announcements (``/api/known-issues/...``).

Same rules as :mod:`bot.web.api.drafts`: session cookie, ``X-CSRF-Token`` on writes, JSON errors.
Process owners and admins only. Documented in ``docs/api.md``.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.web import auth
from bot.outreach import broadcasts
from bot.outreach import known_issues
from bot.web.api.drafts import _cases, _store, read_json
from bot.web.request_fields import flag, optional_whole_number, texts
from bot.web.auth import require_role
from bot.errors import NotFound
from bot.store.models import Role

OWNER_ROLES = (Role.process_owner, Role.admin)


def known_issue_id(request: web.Request) -> int:
    value = request.match_info["id"]
    if not value.isdigit():
        raise NotFound(f"no known issue {value!r}")
    return int(value)


def _progress_of(session: Any, issue_id: int) -> Any:
    broadcast_id = broadcasts.latest_broadcast(session, issue_id)
    if broadcast_id is None:
        raise NotFound(f"known issue {issue_id} has no fix announcement (it is still open)")
    return broadcasts.progress(session, broadcast_id)


def _csv_of(session: Any, issue_id: int) -> str:
    broadcast_id = broadcasts.latest_broadcast(session, issue_id)
    if broadcast_id is None:
        raise NotFound(f"known issue {issue_id} has no fix announcement (it is still open)")
    return broadcasts.report_csv(session, broadcast_id)


async def csv_response(request: web.Request, issue_id: int) -> web.Response:
    text = await _store(request).run(_csv_of, issue_id)
    return web.Response(text=text, content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="known-issue-{issue_id}-delivery.csv"'})


@require_role(*OWNER_ROLES)
async def list_issues(request: web.Request) -> web.Response:
    data = await _store(request).run(known_issues.list_known_issues, _cases(request).taxonomy)
    data["root_causes"] = _cases(request).taxonomy.choices("en")
    return web.json_response(data)


@require_role(*OWNER_ROLES)
async def open_issue(request: web.Request) -> web.Response:
    """``{"root_cause", "title", "text_nl", "text_en"}`` → 201; 409 when one is open for it."""
    body = await read_json(request)
    root_cause, title, text_nl, text_en = texts(body, "root_cause", "title", "text_nl", "text_en")
    result = await _store(request).run(known_issues.open_known_issue, request[auth.USER_KEY], root_cause,
                                       title, text_nl, text_en, _cases(request).taxonomy)
    return web.json_response(result, status=201)


@require_role(*OWNER_ROLES)
async def get_issue(request: web.Request) -> web.Response:
    return web.json_response(await _store(request).run(known_issues.known_issue_detail, known_issue_id(request),
                                                       _cases(request).taxonomy))


@require_role(*OWNER_ROLES)
async def resolve(request: web.Request) -> web.Response:
    """``{"fix_text_nl", "fix_text_en", "window_days": 14, "include_contacted": false}``."""
    body = await read_json(request)
    window = optional_whole_number(body.get("window_days"), "window_days", "a whole number of days")
    include = flag(body.get("include_contacted", False), "include_contacted")
    fix_nl, fix_en = texts(body, "fix_text_nl", "fix_text_en")
    result = await _store(request).run(broadcasts.resolve, known_issue_id(request), request[auth.USER_KEY],
                                       fix_nl, fix_en, window, include)
    return web.json_response(result)


@require_role(*OWNER_ROLES)
async def progress(request: web.Request) -> web.Response:
    """total, pending, queued, sent, failed, skipped, rate (messages/s over the last 10 s), status."""
    return web.json_response(await _store(request).run(_progress_of, known_issue_id(request)))


@require_role(*OWNER_ROLES)
async def report_csv(request: web.Request) -> web.Response:
    return await csv_response(request, known_issue_id(request))


def setup_known_issue_api(app: web.Application) -> None:
    """Register ``/api/known-issues`` routes (auth is set up by :func:`bot.web.api.setup_api`)."""
    router = app.router
    router.add_get("/api/known-issues", list_issues, name="api_known_issues")
    router.add_post("/api/known-issues", open_issue, name="api_known_issue_open")
    router.add_get("/api/known-issues/{id}", get_issue, name="api_known_issue")
    router.add_post("/api/known-issues/{id}/resolve", resolve, name="api_known_issue_resolve")
    router.add_get("/api/known-issues/{id}/progress", progress, name="api_known_issue_progress")
    router.add_get("/api/known-issues/{id}/report.csv", report_csv, name="api_known_issue_report")
