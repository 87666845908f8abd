"""Console pages for cases: the case queue and one case with its whole context on one screen."""
from __future__ import annotations

import secrets
from typing import Any, Dict, Optional

from aiohttp import web

from bot.web.middleware import status_of
from bot.cases import escalation as cases
from bot.cases import public_threads
from bot.web.console.display import case_of, refusal, window_view
from bot.web.auth import USER_KEY, require_role
from bot.web.api.cases import HANDLE_ROLES, READ_ROLES, _crm, case_id
from bot.web.console.views import _config, _local_time, _see_other, _store, _text_field, override_flag, render
from bot.errors import InvalidInput, Conflict, Unavailable
from bot.customers.identification import agent_link
from bot.web.request_fields import optional_whole_number, whole_number
from bot.web.keys import CASES_KEY

TRIGGER_LABELS = {
    "request_human": "asked for a human",
    "complaint": "complaint",
    "low_confidence": "bot did not understand twice",
    "repeated_question": "asked the same again",
    "negative_sentiment": "upset customer",
    "profanity": "profanity",
    "draft_rejected": "draft rejected by an agent",
    "rasa_refused": "the bot could not process a message",
    "rasa_unavailable": "the bot was unreachable for minutes",
    "customer_asked_after_bot_answer": "bot's answer did not help",
}
CRM_LABELS = {"ok": "CRM profile", "pending": "looking up in the CRM…", "unavailable": "CRM unavailable",
              "not_found": "not found in the CRM", "not_linked": "not linked to a CRM customer yet"}
DONE = {"reply": "Reply queued for delivery", "note": "Note added", "assign": "Case assigned",
        "close": "Case closed; the bot answers this customer again", "link": "Customer linked",
        "moved": "Moved to private: the private reply to the comment and the public answer are queued; "
                 "this case holds the private conversation"}


def _cases_settings(request: web.Request) -> Any:
    return request.app[CASES_KEY]


@require_role(*READ_ROLES)
async def cases_page(request: web.Request) -> web.Response:
    include_closed = request.query.get("all") == "1"
    rows = await _store(request).run(cases.case_queue, None, include_closed)
    return render(request, "cases.html", {"cases": rows, "include_closed": include_closed,
                                          "trigger_labels": TRIGGER_LABELS})


def _case_page_data(session: Any, number: int) -> Dict[str, Any]:
    detail = cases.case_detail(session, number)
    public = detail["visibility"] == "public"
    return {"case": detail,
            "post": public_threads.thread(session, detail["conversation_id"])["post"] if public else None,
            "linked_case_id": case_of(session, detail["linked_id"])}


async def _render_case(request: web.Request, number: int, *, error: Optional[str] = None,
                       status: int = 200, form: Optional[Dict[str, str]] = None,
                       refused: Optional[Dict[str, Any]] = None) -> web.Response:
    data = await _store(request).run(_case_page_data, number)
    detail = data["case"]
    settings = _cases_settings(request)
    done = request.query.get("done")
    window = window_view(request.app, detail["channel"], detail["visibility"], detail["last_customer_message_at"],
                         _local_time(request), agent_reply=True)
    return render(request, "case.html", {
        **data,
        "window": window,
        "refusal": refused,
        "root_causes": settings.taxonomy.choices("en"),
        "trigger_labels": TRIGGER_LABELS,
        "crm_labels": CRM_LABELS,
        "flash": DONE.get(done or ""),
        "error": error,
        "form": form or {},
        "reply_token": secrets.token_urlsafe(16),
        "may_handle": request[USER_KEY].may(HANDLE_ROLES),
    }, status=status)


@require_role(*READ_ROLES)
async def case_page(request: web.Request) -> web.Response:
    return await _render_case(request, case_id(request))


async def _act(request: web.Request, action: str) -> web.StreamResponse:
    number = case_id(request)
    form = await request.post()
    user = request[USER_KEY]
    store = _store(request)
    fields = {k: _text_field(form, k) or "" for k in ("text", "note", "root_cause", "resolution",
                                                       "customer_number", "identity_id", "agent_id")}
    try:
        if action == "reply":
            await store.run(cases.reply, number, user, fields["text"], _text_field(form, "token"),
                            override_flag(form))
        elif action == "note":
            await store.run(cases.add_note, number, user, fields["note"])
        elif action == "assign":
            assignee = optional_whole_number(fields["agent_id"], "agent_id", "a user id")
            await store.run(cases.assign, number, user, user.id if assignee is None else assignee)
        elif action == "close":
            await store.run(cases.close, number, user, fields["root_cause"], fields["resolution"],
                            _cases_settings(request))
        elif action == "link":
            identity = whole_number(fields["identity_id"], "identity_id", "the channel identity to link")
            await agent_link(store, _crm(request), number, user, identity,
                             fields["customer_number"], _config(request).crm.timeout_seconds)
    except (InvalidInput, Conflict, Unavailable) as error:
        refused = refusal(error, action)
        return await _render_case(request, number, error=None if refused else error.reason,
                                  status=status_of(error), form=fields, refused=refused)
    return _see_other(f"/console/cases/{number}?done={action}")


@require_role(*HANDLE_ROLES)
async def reply(request: web.Request) -> web.StreamResponse:
    return await _act(request, "reply")


@require_role(*HANDLE_ROLES)
async def note(request: web.Request) -> web.StreamResponse:
    return await _act(request, "note")


@require_role(*HANDLE_ROLES)
async def assign(request: web.Request) -> web.StreamResponse:
    return await _act(request, "assign")


@require_role(*HANDLE_ROLES)
async def close(request: web.Request) -> web.StreamResponse:
    return await _act(request, "close")


@require_role(*HANDLE_ROLES)
async def link(request: web.Request) -> web.StreamResponse:
    return await _act(request, "link")


def setup_case_pages(app: web.Application) -> None:
    """Register the case pages (auth and templates are set up by :func:`setup_console`)."""
    router = app.router
    router.add_get("/console/cases", cases_page, name="console_cases")
    router.add_get("/console/cases/{id}", case_page, name="console_case")
    router.add_post("/console/cases/{id}/reply", reply, name="console_case_reply")
    router.add_post("/console/cases/{id}/notes", note, name="console_case_note")
    router.add_post("/console/cases/{id}/assign", assign, name="console_case_assign")
    router.add_post("/console/cases/{id}/close", close, name="console_case_close")
    router.add_post("/console/cases/{id}/link", link, name="console_case_link")
