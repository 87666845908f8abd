"""Console users, logins, roles and CSRF protection.

* Passwords are hashed with argon2id (argon2-cffi's ``PasswordHasher``).
* A login creates a :class:`~bot.store.models.LoginSession`: the browser gets a random
  32-byte token in the HttpOnly, SameSite=Lax cookie ``webcare_session`` (``Secure`` when
  ``console.cookie_secure``); the store keeps only its sha256. Sessions expire after
  ``console.session_hours``; logout deletes the row.
* :func:`require_role` guards a handler: anonymous → 401 (a redirect to the login page for
  console pages), wrong role → 403. ``admin`` may do everything.
* Every state-changing request (POST/PUT/PATCH/DELETE) under ``/console`` and ``/api`` must
  carry the session's CSRF token, as the form field ``csrf_token`` or the header
  ``X-CSRF-Token`` (:func:`auth_middleware`). The login form is protected by a double-submit
  cookie; the JSON login accepts ``application/json`` only, which a cross-site page cannot
  send without a CORS preflight (never granted).
* Login throttling: after :data:`MAX_FAILED_LOGINS` failed logins for one username within
  :data:`THROTTLE_WINDOW`, further attempts are refused with 429. The failures are audit
  entries (``login.failed``) in the store, so the limit holds across replicas.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, FrozenSet, Iterable, Optional, Union
from urllib.parse import quote

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.store.audit import record
from bot.errors import Conflict, InvalidInput, NotAllowed, NotAuthenticated, NotFound, RateLimited, TooLarge, WebcareError
from bot.web.middleware import HttpError
from bot.store.models import AuditEntry, LoginSession, Role, User, utcnow
from bot.web.keys import CONFIG_KEY, STORE_KEY

SESSION_COOKIE = "webcare_session"
LOGIN_CSRF_COOKIE = "webcare_login_csrf"
LOGIN_PATH = "/console/login"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # hashing megabytes of "password" is a denial of service
MAX_FAILED_LOGINS = 5
THROTTLE_WINDOW = dt.timedelta(minutes=15)
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,79}$")

USER_KEY = "webcare.user"  # request key: the resolved CurrentUser or None

_hasher = PasswordHasher()
_dummy_hash: Optional[str] = None


# --------------------------------------------------------------------------- passwords


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _burn_time(password: str) -> None:
    """Verify against a dummy hash so an unknown username takes as long as a known one."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
    verify_password(_dummy_hash, password)


def normalize_username(username: str) -> str:
    return (username or "").strip().lower()


def parse_role(role: Union[Role, str]) -> Role:
    try:
        return Role(role)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise InvalidInput(f"unknown role {role!r}; use one of: {known}") from None


# --------------------------------------------------------------------------- users


def create_user(
    session: Session,
    username: str,
    password: str,
    role: Union[Role, str],
    display_name: Optional[str] = None,
) -> User:
    """Add a console user. Usernames are case-insensitive and unique."""
    name = normalize_username(username)
    if not USERNAME_PATTERN.match(name):
        raise InvalidInput(
            "a username is 1-80 characters: letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    parsed_role = parse_role(role)
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"the password must be at most {MAX_PASSWORD_LENGTH} characters")
    display = (display_name or "").strip() or name
    if len(display) > 120:
        raise InvalidInput("the display name must be at most 120 characters")
    exists = session.execute(select(User.id).where(User.username == name)).scalar_one_or_none()
    if exists is not None:
        raise Conflict(f"user {name!r} already exists")
    user = User(username=name, display_name=display, password_hash=hash_password(password),
                role=parsed_role, active=True)
    session.add(user)
    session.flush()
    record(session, None, "user.create", "user", user.id, {"username": name, "role": parsed_role.value})
    return user


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class CurrentUser:
    """The logged-in user of one request (detached from any database session)."""

    id: int
    username: str
    display_name: str
    role: Role
    session_id: int
    csrf_token: str
    expires_at: dt.datetime

    def may(self, roles: Iterable[Role]) -> bool:
        return self.role == Role.admin or self.role in set(roles)

    def public(self) -> dict:
        return {"id": self.id, "username": self.username, "display_name": self.display_name,
                "role": self.role.value}


@dataclass(frozen=True)
class LoginOutcome:
    """The result of a login attempt: a user and a cookie token, or the error to raise."""

    user: Optional[CurrentUser] = None
    token: Optional[str] = None
    error: Optional[WebcareError] = None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _recent_failures(session: Session, name: str, user: Optional[User], now: dt.datetime) -> int:
    since = now - THROTTLE_WINDOW
    query = select(AuditEntry.id).where(
        AuditEntry.action == "login.failed", AuditEntry.target_type == "user", AuditEntry.at >= since
    )
    if user is not None:
        last_ok = session.execute(
            select(AuditEntry.at)
            .where(AuditEntry.action == "login", AuditEntry.target_type == "user",
                   AuditEntry.target_id == user.id)
            .order_by(AuditEntry.at.desc())
            .limit(1)
        ).scalar_one_or_none()
        if last_ok is not None and last_ok > since:
            query = query.where(AuditEntry.at > last_ok)
        query = query.where(AuditEntry.target_id == user.id)
    else:
        query = query.where(AuditEntry.target_id.is_(None),
                            AuditEntry.details["username"].as_string() == name)
    return len(session.execute(query.limit(MAX_FAILED_LOGINS)).all())


def login(
    session: Session,
    username: str,
    password: str,
    *,
    session_hours: int,
    replaces: Optional[str] = None,
    now: Optional[dt.datetime] = None,
) -> LoginOutcome:
    """Check the credentials and open a session.

    Returns the error instead of raising it, so that the failed attempt is committed
    (raising inside ``Store.run`` would roll the audit entry back).
    ``replaces``: the token of the browser's previous session, which is ended.
    """
    now = now or utcnow()
    name = normalize_username(username)
    password = password if isinstance(password, str) else ""
    user = session.execute(select(User).where(User.username == name)).scalar_one_or_none()
    if _recent_failures(session, name, user, now) >= MAX_FAILED_LOGINS:
        minutes = int(THROTTLE_WINDOW.total_seconds() // 60)
        return LoginOutcome(error=RateLimited(
            f"too many failed logins for this username; try again in up to {minutes} minutes"))
    if len(password) > MAX_PASSWORD_LENGTH:
        ok = False
    elif user is None:
        _burn_time(password)
        ok = False
    else:
        ok = verify_password(user.password_hash, password) and user.active
    if not ok:
        target = user.id if user is not None else None
        record(session, None, "login.failed", "user", target, {"username": name[:80]})
        return LoginOutcome(error=NotAuthenticated("wrong username or password"))
    assert user is not None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    if replaces:
        session.execute(delete(LoginSession).where(LoginSession.token_hash == token_hash(replaces)))
    session.execute(delete(LoginSession).where(LoginSession.user_id == user.id,
                                               LoginSession.expires_at <= now))
    token = secrets.token_urlsafe(32)
    row = LoginSession(token_hash=token_hash(token), csrf_token=secrets.token_urlsafe(32),
                       user_id=user.id, created_at=now,
                       expires_at=now + dt.timedelta(hours=session_hours))
    session.add(row)
    session.flush()
    record(session, user.id, "login", "user", user.id, {"username": name})
    return LoginOutcome(user=_current(user, row), token=token)


def _current(user: User, row: LoginSession) -> CurrentUser:
    return CurrentUser(id=user.id, username=user.username, display_name=user.display_name,
                       role=Role(user.role), session_id=row.id, csrf_token=row.csrf_token,
                       expires_at=row.expires_at)


def resolve(session: Session, token: str, now: Optional[dt.datetime] = None) -> Optional[CurrentUser]:
    """The user of a session cookie, or ``None`` when unknown, expired or deactivated."""
    now = now or utcnow()
    row = session.execute(
        select(LoginSession, User)
        .join(User, User.id == LoginSession.user_id)
        .where(LoginSession.token_hash == token_hash(token), LoginSession.expires_at > now,
               User.active.is_(True))
    ).one_or_none()
    if row is None:
        return None
    login_session, user = row
    return _current(user, login_session)


def logout(session: Session, token: str) -> bool:
    """End the session of ``token``; ``True`` when there was one."""
    result = session.execute(delete(LoginSession).where(LoginSession.token_hash == token_hash(token)))
    return bool(result.rowcount)


# --------------------------------------------------------------------------- aiohttp glue


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
