"""Logins on the web: session cookies, roles on handlers and CSRF protection.

* The accounts themselves (passwords, login sessions, throttling) are :mod:`bot.accounts`.
* A login's token goes to the browser in the HttpOnly, SameSite=Lax cookie ``webcare_session``
  (``Secure`` when ``console.cookie_secure``).
* :func:`require_role` guards a handler: anonymous → 401 (a redirect to the login page for
  console pages), wrong role → 403. ``admin`` may do everything.
* Every state-changing request (POST/PUT/PATCH/DELETE) under ``/console`` and ``/api`` must
  carry the session's CSRF token, as the form field ``csrf_token`` or the header
  ``X-CSRF-Token`` (:func:`auth_middleware`). The login form is protected by a double-submit
  cookie; the JSON login accepts ``application/json`` only, which a cross-site page cannot
  send without a CORS preflight (never granted).
* Login throttling (:mod:`bot.accounts`) answers 429.
"""
from __future__ import annotations

import functools
import hmac
import secrets
from typing import Any, Awaitable, Callable, FrozenSet, Optional, Union
from urllib.parse import quote

from aiohttp import web

from bot.accounts import CurrentUser, login, parse_role, resolve
from bot.errors import NotAllowed, NotAuthenticated, NotFound, TooLarge, WebcareError
from bot.web.middleware import HttpError
from bot.store.models import Role
from bot.web.keys import CONFIG_KEY, STORE_KEY

SESSION_COOKIE = "webcare_session"
LOGIN_CSRF_COOKIE = "webcare_login_csrf"
LOGIN_PATH = "/console/login"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

USER_KEY = "webcare.user"  # request key: the resolved CurrentUser or None


def _store(request: web.Request) -> Any:
    return request.app[STORE_KEY]


def _console_config(request: web.Request) -> Any:
    return request.app[CONFIG_KEY].console


async def current_user(request: web.Request) -> Optional[CurrentUser]:
    """The request's user from its session cookie (looked up once per request)."""
    if USER_KEY in request:
        return request[USER_KEY]
    token = request.cookies.get(SESSION_COOKIE)
    user = None
    if token and len(token) <= 128:
        user = await _store(request).run(resolve, token)
    request[USER_KEY] = user
    return user


def set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    console = _console_config(request)
    response.set_cookie(SESSION_COOKIE, token, max_age=int(console.session_hours * 3600), path="/",
                        httponly=True, samesite="Lax", secure=bool(console.cookie_secure))


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    console = _console_config(request)
    response.set_cookie(SESSION_COOKIE, "", max_age=0, path="/", httponly=True, samesite="Lax",
                        secure=bool(console.cookie_secure))


def new_login_csrf() -> str:
    """A pre-session CSRF token for the login form (double-submit cookie)."""
    return secrets.token_urlsafe(32)


def set_login_csrf_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    response.set_cookie(LOGIN_CSRF_COOKIE, token, path=LOGIN_PATH, httponly=True, samesite="Strict",
                        secure=bool(_console_config(request).cookie_secure), max_age=3600)


def check_login_csrf(request: web.Request, submitted: Optional[str]) -> None:
    """The login form's token must match its cookie, else 403."""
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not submitted:
        raise NotAllowed("missing CSRF token: reload the login page and try again")
    if not cookie or not hmac.compare_digest(cookie.encode(), str(submitted).encode()):
        raise NotAllowed("the login form has expired or was not sent by this site; reload the login page")


def is_html_page_request(request: web.Request) -> bool:
    return request.method in ("GET", "HEAD") and _is_console_path(request.path)


def login_redirect(request: web.Request) -> web.HTTPException:
    target = LOGIN_PATH
    if request.method in ("GET", "HEAD") and request.path_qs != LOGIN_PATH:
        target += "?next=" + quote(request.path_qs, safe="")
    return web.HTTPFound(target) if request.method in ("GET", "HEAD") else web.HTTPSeeOther(target)


def safe_next(value: Optional[str]) -> str:
    """A post-login target: only paths inside the console (no open redirect)."""
    if value and value.startswith("/console") and not value.startswith("//") and "\\" not in value:
        if not value.startswith(LOGIN_PATH):
            return value
    return "/console"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def require_role(*roles: Union[Role, str]) -> Callable[[Handler], Handler]:
    """Only logged-in users with one of ``roles`` (or admin) may call the handler.

    No roles: any logged-in user. The allowed roles are kept on the handler as
    ``webcare_roles`` (tests enumerate routes with it).
    """
    allowed: FrozenSet[Role] = frozenset(parse_role(r) for r in roles) if roles else frozenset(Role)
    allowed = allowed | {Role.admin}

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            user = await current_user(request)
            if user is None:
                if is_html_page_request(request):
                    raise login_redirect(request)
                raise NotAuthenticated("log in first")
            if user.role not in allowed:
                needed = " or ".join(sorted(r.value for r in allowed))
                raise NotAllowed(f"this needs the role {needed}; you are {user.role.value}")
            return await handler(request)

        guarded.webcare_roles = allowed  # type: ignore[attr-defined]
        return guarded

    return decorate


def public(handler: Handler) -> Handler:
    """Mark a handler that anonymous users may call and that does its own CSRF check (login)."""
    handler.webcare_public = True  # type: ignore[attr-defined]
    return handler


def _is_console_path(path: str) -> bool:
    return path == "/console" or path.startswith("/console/")


def _is_protected_path(path: str) -> bool:
    return _is_console_path(path) or path == "/api" or path.startswith("/api/")


STATIC_PREFIX = "/console/static/"


async def check_csrf(request: web.Request, user: CurrentUser) -> None:
    """The session's CSRF token must come as header or form field, else 403."""
    token = request.headers.get(CSRF_HEADER)
    if not token and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        token = value if isinstance(value, str) else None
    if not token:
        raise NotAllowed(f"missing CSRF token: send the {CSRF_HEADER} header or the {CSRF_FIELD} form field")
    if not hmac.compare_digest(token.encode("utf-8"), user.csrf_token.encode("utf-8")):
        raise NotAllowed("the CSRF token does not match this session; reload the page")


SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve the user and enforce CSRF for everything under /console and /api."""
    path = request.path
    if not _is_protected_path(path) or path.startswith(STATIC_PREFIX):
        return await handler(request)
    is_public = getattr(request.match_info.handler, "webcare_public", False)
    user = await current_user(request)
    if request.method not in SAFE_METHODS and not is_public:
        if user is None:
            if _is_console_path(path):
                raise login_redirect(request)
            raise NotAuthenticated("log in first")
        await check_csrf(request, user)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if path.startswith("/api") and exc.status >= 400:
            raise _as_webcare_error(exc) from None
        raise
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if user is not None or path.startswith("/api"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _as_webcare_error(exc: web.HTTPException) -> WebcareError:
    """aiohttp's own 404/405/413 under /api as JSON errors."""
    if exc.status == 404:
        return NotFound("no such API endpoint")
    if exc.status == 405:
        allowed = ", ".join(sorted(getattr(exc, "allowed_methods", ()) or ()))
        return HttpError(405, "method_not_allowed", f"method not allowed here; allowed: {allowed}")
    if exc.status == 413:
        return TooLarge("request body too large")
    return HttpError(exc.status, "bad_request", exc.reason or "request failed")


def setup_auth(app: web.Application) -> None:
    """Install :func:`auth_middleware` once (after ``error_middleware``)."""
    if auth_middleware not in app.middlewares:
        app.middlewares.append(auth_middleware)
