"""Console users: accounts, roles, passwords and login sessions (no HTTP here).

* Passwords are hashed with argon2id (argon2-cffi's ``PasswordHasher``).
* A login creates a :class:`~bot.store.models.LoginSession`; the caller hands the random
  32-byte token to the browser, the store keeps only its sha256. Sessions expire after
  ``console.session_hours``; logout deletes the row.
* Login throttling: after :data:`MAX_FAILED_LOGINS` failed logins for one username within
  :data:`THROTTLE_WINDOW`, further attempts are refused (:class:`~bot.errors.RateLimited`). The
  failures are audit entries (``login.failed``) in the store, so the limit holds across replicas.

The web layer (:mod:`bot.web.auth`) puts cookies, CSRF and role checks on top.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Optional, Protocol, Union

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.errors import Conflict, InvalidInput, NotAuthenticated, RateLimited, WebcareError
from bot.store.audit import record
from bot.store.models import AuditEntry, LoginSession, Role, User, utcnow

class Actor(Protocol):
    """Who does something in the domain (a :class:`CurrentUser` or a :class:`User` row)."""

    id: int
    display_name: str


MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # hashing megabytes of "password" is a denial of service
MAX_FAILED_LOGINS = 5
THROTTLE_WINDOW = dt.timedelta(minutes=15)
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,79}$")

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
