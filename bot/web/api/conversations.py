"""The JSON API for public conversations (``/api/conversations/{id}/...``); see ``docs/api.md``.

A public conversation is a comment thread under a post: the agent reads the thread, replies in
public, hides a comment or moves the conversation to private (:mod:`bot.cases.public_threads`).
Same rules as the other APIs: session cookie, ``X-CSRF-Token`` on writes, JSON errors;
agents and admins act, process owners may read.
"""
from __future__ import annotations

from aiohttp import web

from bot.cases import public_threads
from bot.errors import NotFound
from bot.web import auth
from bot.web.api.cases import HANDLE_ROLES, READ_ROLES
from bot.web.api.drafts import _cases, _store, read_json
from bot.web.auth import require_role
from bot.web.request_fields import OVERRIDE_FIELD, flag, optional_whole_number, texts


def conversation_id(request: web.Request) -> int:
    value = request.match_info["id"]
    if not value.isdigit():
        raise NotFound(f"no conversation {value!r}")
    return int(value)


@require_role(*READ_ROLES)
async def get_thread(request: web.Request) -> web.Response:
    """The post and its comment thread."""
    return web.json_response(await _store(request).run(public_threads.thread, conversation_id(request)))


@require_role(*HANDLE_ROLES)
async def reply_public(request: web.Request) -> web.Response:
    """``{"text", "token"?, "override_personal_data"?}``: a public reply under the latest comment."""
    body = await read_json(request)
    text, token = texts(body, "text", "token")
    result = await _store(request).run(public_threads.reply_public, conversation_id(request),
                                       request[auth.USER_KEY], text, flag(body.get(OVERRIDE_FIELD), OVERRIDE_FIELD),
                                       token)
    return web.json_response(result)


@require_role(*HANDLE_ROLES)
async def hide(request: web.Request) -> web.Response:
    """``{"message_id"?}``: hide that comment (default: the customer's latest)."""
    body = await read_json(request, required=False)
    message_id = optional_whole_number(body.get("message_id"), "message_id", "the id of the comment's message")
    result = await _store(request).run(public_threads.hide_comment, conversation_id(request),
                                       request[auth.USER_KEY], message_id)
    return web.json_response(result)


@require_role(*HANDLE_ROLES)
async def move_to_private(request: web.Request) -> web.Response:
    """``{"private_text"?, "public_text"?, "override_personal_data"?}``: private reply + short public answer."""
    body = await read_json(request, required=False)
    private_text, public_text = texts(body, "private_text", "public_text")
    result = await _store(request).run(public_threads.move_to_private, conversation_id(request),
                                       request[auth.USER_KEY], _cases(request), private_text, public_text,
                                       flag(body.get(OVERRIDE_FIELD), OVERRIDE_FIELD))
    return web.json_response(result)


def setup_conversation_api(app: web.Application) -> None:
    """Register ``/api/conversations`` routes (auth is set up by :func:`bot.web.api.setup_api`)."""
    router = app.router
    router.add_get("/api/conversations/{id}/thread", get_thread, name="api_thread")
    router.add_post("/api/conversations/{id}/reply", reply_public, name="api_thread_reply")
    router.add_post("/api/conversations/{id}/hide", hide, name="api_thread_hide")
    router.add_post("/api/conversations/{id}/move-to-private", move_to_private, name="api_thread_move")
