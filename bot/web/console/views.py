"""Console pages: login, the draft queue, one draft, and the decision forms."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Dict, Optional

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot import __version__
from bot.web.middleware import status_of
from bot import accounts
from bot.web import auth
from bot.review import decisions as drafts
from bot.cases import escalation, public_threads
from bot.web.console.display import (
    OVERRIDE_LABEL,
    case_of,
    channel_label,
    delivery_label,
    duration,
    refusal,
    safe_url,
    visibility_label,
    window_view,
)
from bot.web.request_fields import OVERRIDE_FIELD, flag
from bot.web.auth import USER_KEY, public, require_role
from bot.errors import InvalidInput, Conflict, NotFound
from bot.store.models import Role
from bot.web.keys import CASES_KEY, CONFIG_KEY, JINJA_KEY, STORE_KEY

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
DRAFT_ROLES = (Role.agent, Role.admin)
DONE_LABELS = {"approved": "approved and sent", "edited": "sent as edited", "picked": "answered with the alternative",
               "rejected": "rejected; the conversation is now yours"}
STATUS_LABELS = {"pending": "Waiting for a decision", "approved": "Approved", "edited": "Sent as edited",
                 "picked": "Alternative sent", "rejected": "Rejected (handed to an agent)",
                 "superseded": "Superseded by a newer customer message"}


def _store(request: web.Request) -> Any:
    return request.app[STORE_KEY]


def _config(request: web.Request) -> Any:
    return request.app[CONFIG_KEY]


# --------------------------------------------------------------------------- template helpers


def percent(confidence: Optional[float]) -> str:
    if confidence is None:
        return "–"
    try:
        return f"{float(confidence) * 100:.0f}%"
    except (TypeError, ValueError):
        return "–"


def sla_state(seconds: Optional[float], sla_seconds: int) -> str:
    seconds = seconds or 0
    if sla_seconds and seconds >= sla_seconds:
        return "overdue"
    if sla_seconds and seconds >= 0.8 * sla_seconds:
        return "due-soon"
    return "ok"


def _environment(app: web.Application) -> jinja2.Environment:
    env = aiohttp_jinja2.setup(
        app,
        app_key=JINJA_KEY,
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every template, whatever its name: customer text is never trusted
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(duration=duration, percent=percent, short_id=drafts.short_external_id,
                       visibility_label=visibility_label, delivery_label=delivery_label, safe_url=safe_url)
    env.globals.update(sla_state=sla_state, status_labels=STATUS_LABELS, channel_label=channel_label,
                       override_label=OVERRIDE_LABEL, override_field=OVERRIDE_FIELD)
    return env


def _local_time(request: web.Request):  # type: ignore[no-untyped-def]
    zone = _config(request).opening_hours.timezone

    def fmt(value: Optional[str]) -> str:
        if not value:
            return ""
        moment = dt.datetime.fromisoformat(value).astimezone(zone)
        return moment.strftime("%d %b %H:%M")

    return fmt


def render(request: web.Request, template: str, context: Dict[str, Any], status: int = 200) -> web.Response:
    user = request.get(USER_KEY)
    base = {
        "user": user,
        "csrf_token": user.csrf_token if user else "",
        "version": __version__,
        "sla_seconds": _config(request).console.sla_seconds,
        "local_time": _local_time(request),
        "may_draft": bool(user and user.may(DRAFT_ROLES)),
        "page": template.rsplit(".", 1)[0],
    }
    response = aiohttp_jinja2.render_template(template, request, {**base, **context}, app_key=JINJA_KEY,
                                              status=status)
    return response


def _draft_id(request: web.Request) -> int:
    value = request.match_info["id"]
    if not value.isdigit():
        raise NotFound(f"no draft {value!r}")
    return int(value)


def _text_field(form: Any, name: str) -> Optional[str]:
    value = form.get(name)
    return value if isinstance(value, str) else None


def override_flag(form: Any) -> bool:
    """The form's "I know this is public and mean to publish it" checkbox."""
    return flag(_text_field(form, OVERRIDE_FIELD), OVERRIDE_FIELD)


# --------------------------------------------------------------------------- login


@public
async def login_page(request: web.Request) -> web.Response:
    if await auth.current_user(request) is not None:
        raise web.HTTPFound(auth.safe_next(request.query.get("next")))
    return _login_form(request, next_url=request.query.get("next"))


def _login_form(request: web.Request, *, next_url: Optional[str] = None, error: Optional[str] = None,
                username: str = "", status: int = 200) -> web.Response:
    token = auth.new_login_csrf()
    response = render(request, "login.html", {
        "login_csrf": token, "error": error, "username": username, "next_url": auth.safe_next(next_url),
    }, status=status)
    auth.set_login_csrf_cookie(request, response, token)
    return response


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


@public
async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    auth.check_login_csrf(request, _text_field(form, auth.CSRF_FIELD))
    username = _text_field(form, "username") or ""
    password = _text_field(form, "password") or ""
    next_url = _text_field(form, "next")
    if not username.strip() or not password:
        return _login_form(request, next_url=next_url, error="Enter your username and password.",
                           username=username, status=400)
    outcome = await _store(request).run(
        accounts.login, username, password, session_hours=_config(request).console.session_hours,
        replaces=request.cookies.get(auth.SESSION_COOKIE),
    )
    if outcome.error is not None:
        return _login_form(request, next_url=next_url, error=outcome.error.reason[:1].upper()
                           + outcome.error.reason[1:] + ".", username=username, status=status_of(outcome.error))
    response = _see_other(auth.safe_next(next_url))
    auth.set_session_cookie(request, response, outcome.token)
    response.del_cookie(auth.LOGIN_CSRF_COOKIE, path=auth.LOGIN_PATH)
    return response


@require_role()
async def logout(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(auth.SESSION_COOKIE)
    if token:
        await _store(request).run(accounts.logout, token)
    response = _see_other(auth.LOGIN_PATH)
    auth.clear_session_cookie(request, response)
    return response


# --------------------------------------------------------------------------- pages


@require_role()
async def home(request: web.Request) -> web.Response:
    user = request[USER_KEY]
    if user.may(DRAFT_ROLES):
        raise web.HTTPFound("/console/queue")
    return render(request, "home.html", {})


@require_role(*DRAFT_ROLES)
async def queue_page(request: web.Request) -> web.Response:
    queue = await _store(request).run(drafts.pending_queue)
    return render(request, "queue.html", {"queue": queue, "flash": _flash(request)})


def _flash(request: web.Request) -> Optional[str]:
    done, draft = request.query.get("done"), request.query.get("d", "")
    if done in DONE_LABELS and draft.isdigit():
        return f"Draft #{draft} {DONE_LABELS[done]}."
    return None


def _draft_page_data(session: Any, draft_id: int) -> Dict[str, Any]:
    detail = drafts.draft_detail(session, draft_id)
    ids = drafts.pending_ids(session)
    previous_id = next_id = None
    if draft_id in ids:
        i = ids.index(draft_id)
        previous_id = ids[i - 1] if i > 0 else None
        next_id = ids[i + 1] if i + 1 < len(ids) else None
    elif ids:
        next_id = ids[0]
    conversation = detail["conversation"]
    # How each outbound message went out (a template, the HUMAN_AGENT tag, the error).
    turns = {t["id"]: t for t in escalation.conversation_transcript(session, conversation["id"])}
    for message in conversation["messages"]:
        turn = turns.get(message["id"]) or {}
        message["sent_as"], message["error"] = turn.get("sent_as"), turn.get("error")
    last = escalation.last_customer_message_at(session, conversation["id"])
    public = conversation["visibility"] == "public"
    return {"draft": detail, "previous_id": previous_id, "next_id": next_id, "pending_count": len(ids),
            "last_customer_message_at": last.isoformat() if last else None,
            "post": public_threads.thread(session, conversation["id"])["post"] if public else None,
            "linked_case_id": case_of(session, conversation["linked_id"])}


async def _render_draft(request: web.Request, draft_id: int, *, error: Optional[str] = None,
                        status: int = 200, edit_text: Optional[str] = None,
                        edit_intent: Optional[str] = None,
                        refused: Optional[Dict[str, Any]] = None) -> web.Response:
    data = await _store(request).run(_draft_page_data, draft_id)
    conversation = data["draft"]["conversation"]
    window = window_view(request.app, conversation["channel"], conversation["visibility"],
                         data["last_customer_message_at"], _local_time(request), agent_reply=False)
    return render(request, "draft.html", {
        **data, "error": error, "flash": _flash(request), "window": window, "refusal": refused,
        "edit_text": edit_text if edit_text is not None else data["draft"]["text"],
        "edit_intent": edit_intent or "",
    }, status=status)


@require_role(*DRAFT_ROLES)
async def draft_page(request: web.Request) -> web.Response:
    return await _render_draft(request, _draft_id(request))


async def _decide(request: web.Request, action: str) -> web.StreamResponse:
    draft_id = _draft_id(request)
    form = await request.post()
    user = request[USER_KEY]
    store = _store(request)
    raw = _text_field(form, "index") or ""
    try:
        override = override_flag(form)
        if action == "approve":
            result = await store.run(drafts.approve, draft_id, user, override)
        elif action == "edit":
            result = await store.run(drafts.edit, draft_id, user, _text_field(form, "text") or "",
                                     _text_field(form, "intent"), override)
        elif action == "pick":
            if not raw.strip().isdigit():
                raise InvalidInput("choose an alternative")
            result = await store.run(drafts.pick, draft_id, user, int(raw), override)
        else:
            result = await store.run(drafts.reject, draft_id, user, _text_field(form, "reason"),
                                     request.app[CASES_KEY])
    except (InvalidInput, Conflict) as error:
        # Show the draft again with the reason (and keep what the agent typed).
        refused = refusal(error, action, index=raw.strip())
        return await _render_draft(request, draft_id, error=None if refused else error.reason,
                                   status=status_of(error), refused=refused,
                                   edit_text=_text_field(form, "text") if action == "edit" else None,
                                   edit_intent=_text_field(form, "intent") if action == "edit" else None)
    status = result["draft"]["status"]
    ids = await store.run(drafts.pending_ids)
    target = f"/console/drafts/{ids[0]}" if ids else "/console/queue"
    return _see_other(f"{target}?done={status}&d={draft_id}")


@require_role(*DRAFT_ROLES)
async def approve(request: web.Request) -> web.StreamResponse:
    return await _decide(request, "approve")


@require_role(*DRAFT_ROLES)
async def edit(request: web.Request) -> web.StreamResponse:
    return await _decide(request, "edit")


@require_role(*DRAFT_ROLES)
async def pick(request: web.Request) -> web.StreamResponse:
    return await _decide(request, "pick")


@require_role(*DRAFT_ROLES)
async def reject(request: web.Request) -> web.StreamResponse:
    return await _decide(request, "reject")


def setup_draft_pages(app: web.Application) -> None:
    """Register login, logout, the draft queue, one draft and its decision forms, the static files."""
    _environment(app)
    router = app.router
    router.add_get("/console", home, name="console_home")
    router.add_get("/console/login", login_page, name="console_login")
    router.add_post("/console/login", login_submit, name="console_login_submit")
    router.add_post("/console/logout", logout, name="console_logout")
    router.add_get("/console/queue", queue_page, name="console_queue")
    router.add_get("/console/drafts/{id}", draft_page, name="console_draft")
    router.add_post("/console/drafts/{id}/approve", approve, name="console_draft_approve")
    router.add_post("/console/drafts/{id}/edit", edit, name="console_draft_edit")
    router.add_post("/console/drafts/{id}/pick", pick, name="console_draft_pick")
    router.add_post("/console/drafts/{id}/reject", reject, name="console_draft_reject")
    router.add_static("/console/static", str(STATIC), name="console_static", append_version=False)
