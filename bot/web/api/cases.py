"""The JSON API for cases (``/api/cases/...``); documented in ``docs/api.md``.

Same rules as :mod:`bot.web.api.drafts`: session cookie, ``X-CSRF-Token`` on writes, JSON errors.
Agents and admins handle cases; process owners may read them.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.web import auth
from bot.cases import escalation as cases
from bot.web.api.drafts import _cases, _config, _store, read_json
from bot.web.auth import require_role
from bot.errors import NotFound
from bot.customers.identification import agent_link
from bot.store.models import Role
from bot.web.request_fields import OVERRIDE_FIELD, flag, optional_text, texts, whole_number
from bot.web.keys import CRM_KEY
from bot.web.windows import window_state

HANDLE_ROLES = (Role.agent, Role.admin)
READ_ROLES = (Role.agent, Role.admin, Role.process_owner)


def case_id(request: web.Request) -> int:
    value = request.match_info["id"]
    if not value.isdigit():
        raise NotFound(f"no case {value!r}")
    return int(value)


def _crm(request: web.Request) -> Any:
    return request.app[CRM_KEY]


@require_role(*READ_ROLES)
async def list_cases(request: web.Request) -> web.Response:
    """``?all=1`` includes closed cases."""
    include_closed = request.query.get("all") in ("1", "true", "yes")
    rows = await _store(request).run(cases.case_queue, None, include_closed)
    return web.json_response({"cases": rows, "sla_seconds": _config(request).console.sla_seconds})


@require_role(*READ_ROLES)
async def get_case(request: web.Request) -> web.Response:
    detail = await _store(request).run(cases.case_detail, case_id(request))
    detail["root_causes"] = _cases(request).taxonomy.choices(detail.get("language"))
    detail["window"] = window_state(request.app, detail["channel"], detail["visibility"],
                                    detail.get("last_customer_message_at"))
    return web.json_response(detail)


@require_role(*HANDLE_ROLES)
async def reply(request: web.Request) -> web.Response:
    body = await read_json(request)
    text, token = texts(body, "text", "token")
    result = await _store(request).run(cases.reply, case_id(request), request[auth.USER_KEY], text, token,
                                       flag(body.get(OVERRIDE_FIELD), OVERRIDE_FIELD))
    return web.json_response(result)


@require_role(*HANDLE_ROLES)
async def note(request: web.Request) -> web.Response:
    body = await read_json(request)
    [text] = texts(body, "text")
    result = await _store(request).run(cases.add_note, case_id(request), request[auth.USER_KEY], text)
    return web.json_response(result)


@require_role(*HANDLE_ROLES)
async def assign(request: web.Request) -> web.Response:
    """``{"agent_id": N}``; without it the case goes to the caller ("take")."""
    body = await read_json(request, required=False)
    user = request[auth.USER_KEY]
    assignee = whole_number(body.get("agent_id", user.id), "agent_id", "a user id")
    result = await _store(request).run(cases.assign, case_id(request), user, assignee)
    return web.json_response(result)


@require_role(*HANDLE_ROLES)
async def close(request: web.Request) -> web.Response:
    body = await read_json(request)
    root_cause, resolution = texts(body, "root_cause", "resolution")
    result = await _store(request).run(cases.close, case_id(request), request[auth.USER_KEY],
                                       root_cause, resolution, _cases(request))
    return web.json_response(result)


@require_role(*HANDLE_ROLES)
async def link(request: web.Request) -> web.Response:
    """``{"identity_id": N, "customer_number": "..."}``: link to a CRM customer."""
    body = await read_json(request)
    number = case_id(request)
    identity = whole_number(body.get("identity_id"), "identity_id", "the id of the channel identity to link")
    result = await agent_link(_store(request), _crm(request), number, request[auth.USER_KEY],
                              identity, optional_text(body.get("customer_number"), "customer_number"),
                              _config(request).crm.timeout_seconds)
    return web.json_response(result)


def setup_case_api(app: web.Application) -> None:
    """Register ``/api/cases`` routes (auth is set up by :func:`bot.web.api.setup_api`)."""
    router = app.router
    router.add_get("/api/cases", list_cases, name="api_cases")
    router.add_get("/api/cases/{id}", get_case, name="api_case")
    router.add_post("/api/cases/{id}/reply", reply, name="api_case_reply")
    router.add_post("/api/cases/{id}/notes", note, name="api_case_note")
    router.add_post("/api/cases/{id}/assign", assign, name="api_case_assign")
    router.add_post("/api/cases/{id}/close", close, name="api_case_close")
    router.add_post("/api/cases/{id}/link", link, name="api_case_link")
