"""Console page of a public conversation: the post, its comment thread and the agent's moves.

``/console/conversations/{id}`` shows the post (id, permalink) and the comments (author, time,
hidden / edited / deleted, our replies with their delivery); agents and admins reply in public,
hide a comment or move the conversation to private (:mod:`bot.cases.public_threads` does the
work). Process owners may read. A public reply with personal data is refused with the findings
and the text kept; the agent may tick "I know this is public and mean to publish it".
"""
from __future__ import annotations

import secrets
from typing import Any, Dict, Optional

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cases import public_threads
from bot.customer_texts import customer_text
from bot.errors import Conflict, InvalidInput, NotFound
from bot.store.models import Conversation, Draft, DraftStatus
from bot.web.api.cases import HANDLE_ROLES, READ_ROLES
from bot.web.auth import USER_KEY, require_role
from bot.web.console.display import case_of, refusal
from bot.web.console.views import _see_other, _store, _text_field, override_flag, render
from bot.web.keys import CASES_KEY
from bot.web.middleware import status_of
from bot.web.request_fields import optional_whole_number

DONE = {"reply": "Public reply queued for delivery", "hide": "Comment hidden from the public (queued)"}
FORM_FIELDS = ("text", "private_text", "public_text")


def _conversation_id(request: web.Request) -> int:
    value = request.match_info["id"]
    if not value.isdigit():
        raise NotFound(f"no conversation {value!r}")
    return int(value)


def _thread_page_data(session: Session, conversation_id: int) -> Dict[str, Any]:
    thread = public_threads.thread(session, conversation_id)  # refuses a private conversation
    conversation = session.get(Conversation, conversation_id)
    language = conversation.language if conversation is not None else None
    draft = session.execute(
        select(Draft.id, Draft.messages).where(Draft.conversation_id == conversation_id,
                                               Draft.status == DraftStatus.pending)
        .order_by(Draft.id.desc()).limit(1)).first()
    return {
        "thread": thread,
        # the bot's drafted public reply, if one waits: approving it there keeps the verdict
        "draft": ({"id": draft.id, "text": " ".join(str(m.get("text") or "") for m in draft.messages or []
                                                    if isinstance(m, dict)).strip()} if draft else None),
        "case_id": case_of(session, conversation_id),
        "linked_case_id": case_of(session, thread["linked_id"]),
        "private_text": customer_text("moved_to_private_private", language),
        "public_text": customer_text("moved_to_private_public", language),
    }


async def _render_thread(request: web.Request, conversation_id: int, *, error: Optional[str] = None,
                         status: int = 200, form: Optional[Dict[str, str]] = None,
                         refused: Optional[Dict[str, Any]] = None) -> web.Response:
    data = await _store(request).run(_thread_page_data, conversation_id)
    form = form or {}
    return render(request, "conversation.html", {
        **data,
        "form": {"text": form.get("text", ""),
                 "private_text": form.get("private_text") or data["private_text"],
                 "public_text": form.get("public_text") or data["public_text"]},
        "error": error,
        "refusal": refused,
        "flash": DONE.get(request.query.get("done") or ""),
        "reply_token": secrets.token_urlsafe(16),
        "may_handle": request[USER_KEY].may(HANDLE_ROLES),
    }, status=status)


@require_role(*READ_ROLES)
async def thread_page(request: web.Request) -> web.Response:
    return await _render_thread(request, _conversation_id(request))


async def _act(request: web.Request, action: str) -> web.StreamResponse:
    number = _conversation_id(request)
    form = await request.post()
    user = request[USER_KEY]
    store = _store(request)
    fields = {k: _text_field(form, k) or "" for k in FORM_FIELDS}
    try:
        if action == "reply":
            await store.run(public_threads.reply_public, number, user, fields["text"], override_flag(form),
                            _text_field(form, "token"))
        elif action == "hide":
            message_id = optional_whole_number(_text_field(form, "message_id"), "message_id",
                                               "the id of the comment's message")
            await store.run(public_threads.hide_comment, number, user, message_id)
        else:
            result = await store.run(public_threads.move_to_private, number, user, request.app[CASES_KEY],
                                     fields["private_text"], fields["public_text"], override_flag(form))
            return _see_other(f"/console/cases/{result['case_id']}?done=moved")
    except (InvalidInput, Conflict) as error:
        refused = refusal(error, action)
        return await _render_thread(request, number, error=None if refused else error.reason,
                                    status=status_of(error), form=fields, refused=refused)
    return _see_other(f"/console/conversations/{number}?done={action}")


@require_role(*HANDLE_ROLES)
async def reply_public(request: web.Request) -> web.StreamResponse:
    return await _act(request, "reply")


@require_role(*HANDLE_ROLES)
async def hide(request: web.Request) -> web.StreamResponse:
    return await _act(request, "hide")


@require_role(*HANDLE_ROLES)
async def move_to_private(request: web.Request) -> web.StreamResponse:
    return await _act(request, "move")


def setup_conversation_pages(app: web.Application) -> None:
    """Register the public conversation page and its forms (auth and templates: :func:`setup_console`)."""
    router = app.router
    router.add_get("/console/conversations/{id}", thread_page, name="console_conversation")
    router.add_post("/console/conversations/{id}/reply", reply_public, name="console_conversation_reply")
    router.add_post("/console/conversations/{id}/hide", hide, name="console_conversation_hide")
    router.add_post("/console/conversations/{id}/move-to-private", move_to_private,
                    name="console_conversation_move")
