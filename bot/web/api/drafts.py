"""The console's JSON API (``/api/...``); documented in ``docs/api.md``.

Same session cookie as the console; writes need the ``X-CSRF-Token`` header (see
:mod:`bot.web.auth`). Every response is JSON; errors are ``{"error": code, "reason": ...}``.
"""
from __future__ import annotations

import json
from typing import Any, Dict

from aiohttp import web

from bot import accounts
from bot.web import auth
from bot.review import decisions as drafts
from bot.web.auth import public, require_role
from bot.errors import InvalidInput, NotFound
from bot.store.models import Role, utcnow
from bot.web.request_fields import OVERRIDE_FIELD, flag, optional_text, whole_number
from bot.web.keys import CASES_KEY, CONFIG_KEY, STORE_KEY

DRAFT_ROLES = (Role.agent, Role.admin)


def _store(request: web.Request) -> Any:
    return request.app[STORE_KEY]


def _cases(request: web.Request) -> Any:
    return request.app[CASES_KEY]


def _config(request: web.Request) -> Any:
    return request.app[CONFIG_KEY]


async def read_json(request: web.Request, *, required: bool = True) -> Dict[str, Any]:
    """The request's JSON object; 400 with a reason when malformed. Empty + optional → {}."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise InvalidInput("the request body must be a JSON object")
        return {}
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidInput("the request body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"malformed JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    return body


def _draft_id(request: web.Request) -> int:
    value = request.match_info["id"]
    if not value.isdigit():
        raise NotFound(f"no draft {value!r}")
    return int(value)


# --------------------------------------------------------------------------- session


@public
async def api_login(request: web.Request) -> web.Response:
    """``{"username", "password"}`` → session cookie + ``csrf_token``."""
    if request.content_type != "application/json":
        raise InvalidInput("send the credentials as JSON with Content-Type: application/json")
    body = await read_json(request)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not username.strip():
        raise InvalidInput("missing field 'username' (a string)")
    if not isinstance(password, str) or not password:
        raise InvalidInput("missing field 'password' (a string)")
    outcome = await _store(request).run(
        accounts.login, username, password, session_hours=_config(request).console.session_hours,
        replaces=request.cookies.get(auth.SESSION_COOKIE),
    )
    if outcome.error is not None:
        raise outcome.error
    user = outcome.user
    response = web.json_response({"user": user.public(), "role": user.role.value,
                                  "csrf_token": user.csrf_token, "expires_at": user.expires_at.isoformat()})
    auth.set_session_cookie(request, response, outcome.token)
    return response


@require_role()
async def api_logout(request: web.Request) -> web.Response:
    token = request.cookies.get(auth.SESSION_COOKIE)
    if token:
        await _store(request).run(accounts.logout, token)
    response = web.json_response({"ok": True})
    auth.clear_session_cookie(request, response)
    return response


@require_role()
async def api_me(request: web.Request) -> web.Response:
    user = request[auth.USER_KEY]
    return web.json_response({"user": user.public(), "role": user.role.value, "csrf_token": user.csrf_token,
                              "expires_at": user.expires_at.isoformat()})


# --------------------------------------------------------------------------- drafts


@require_role(*DRAFT_ROLES)
async def list_drafts(request: web.Request) -> web.Response:
    queue = await _store(request).run(drafts.pending_queue)
    return web.json_response({"now": utcnow().isoformat(), "sla_seconds": _config(request).console.sla_seconds,
                              "count": len(queue), "drafts": queue})


@require_role(*DRAFT_ROLES)
async def get_draft(request: web.Request) -> web.Response:
    detail = await _store(request).run(drafts.draft_detail, _draft_id(request))
    return web.json_response({"now": utcnow().isoformat(), "draft": detail})


def _override(body: Dict[str, Any]) -> bool:
    """``override_personal_data``: the agent publishes a public reply with personal data knowingly."""
    return flag(body.get(OVERRIDE_FIELD), OVERRIDE_FIELD)


@require_role(*DRAFT_ROLES)
async def approve(request: web.Request) -> web.Response:
    body = await read_json(request, required=False)  # a body is optional, but must be valid if sent
    result = await _store(request).run(drafts.approve, _draft_id(request), request[auth.USER_KEY],
                                       _override(body))
    return web.json_response(result)


@require_role(*DRAFT_ROLES)
async def edit(request: web.Request) -> web.Response:
    body = await read_json(request)
    if "text" not in body:
        raise InvalidInput("missing field 'text'")
    result = await _store(request).run(drafts.edit, _draft_id(request), request[auth.USER_KEY],
                                       optional_text(body["text"], "text"), optional_text(body.get("intent"), "intent"),
                                       _override(body))
    return web.json_response(result)


@require_role(*DRAFT_ROLES)
async def pick(request: web.Request) -> web.Response:
    body = await read_json(request)
    if "index" not in body:
        raise InvalidInput("missing field 'index' (0 for the first alternative)")
    index = whole_number(body["index"], "index", "a whole number (0 for the first alternative)", texts=False)
    result = await _store(request).run(drafts.pick, _draft_id(request), request[auth.USER_KEY], index,
                                       _override(body))
    return web.json_response(result)


@require_role(*DRAFT_ROLES)
async def reject(request: web.Request) -> web.Response:
    body = await read_json(request, required=False)
    result = await _store(request).run(drafts.reject, _draft_id(request), request[auth.USER_KEY],
                                       optional_text(body.get("reason"), "reason"), _cases(request))
    return web.json_response(result)


def setup_draft_api(app: web.Application) -> None:
    """Register login, logout, ``/api/me`` and the ``/api/drafts`` routes."""
    router = app.router
    router.add_post("/api/login", api_login, name="api_login")
    router.add_post("/api/logout", api_logout, name="api_logout")
    router.add_get("/api/me", api_me, name="api_me")
    router.add_get("/api/drafts", list_drafts, name="api_drafts")
    router.add_get("/api/drafts/{id}", get_draft, name="api_draft")
    router.add_post("/api/drafts/{id}/approve", approve, name="api_draft_approve")
    router.add_post("/api/drafts/{id}/edit", edit, name="api_draft_edit")
    router.add_post("/api/drafts/{id}/pick", pick, name="api_draft_pick")
    router.add_post("/api/drafts/{id}/reject", reject, name="api_draft_reject")
