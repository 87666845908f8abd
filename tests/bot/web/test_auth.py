"""Users, logins, sessions, roles, CSRF and login throttling (bot/web/auth.py)."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import re

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, update

from bot import accounts
from bot.web import auth
from bot.web.app import create_app
from bot.web.keys import STORE_KEY
from bot.accounts import create_user, login, resolve
from bot.cli import main as cli_main
from bot.errors import Conflict, InvalidInput, NotAuthenticated, RateLimited
from bot.store.models import AuditEntry, Draft, DraftStatus, LoginSession, Role, User, utcnow
from tests.bot.console_support import (  # noqa: F401  (app_client is a fixture)
    PASSWORD,
    USERS,
    api_login,
    app_client,
    console_login,
    environ,
    hidden_field,
    make_config,
    make_store,
    seed_draft,
    seed_users,
    store_of,
)

PUBLIC_PATHS = {"/console/login", "/api/login"}


# --------------------------------------------------------------------------- users


def test_create_user_hashes_with_argon2_and_checks_input(tmp_path):
    store = make_store(tmp_path)
    user = store.transaction(create_user, "Anna", PASSWORD, "agent", "Anna Agent")
    assert user.username == "anna" and user.role == Role.agent and user.display_name == "Anna Agent"
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    with pytest.raises(Conflict):
        store.transaction(create_user, "ANNA", PASSWORD, "agent", None)
    with pytest.raises(InvalidInput, match="at least 10"):
        store.transaction(create_user, "bob", "short", "agent", None)
    with pytest.raises(InvalidInput, match="unknown role"):
        store.transaction(create_user, "bob", PASSWORD, "boss", None)
    with pytest.raises(InvalidInput, match="username"):
        store.transaction(create_user, "bob smith", PASSWORD, "agent", None)
    store.close()


def test_login_session_stores_only_the_token_hash_and_expires(tmp_path):
    store = make_store(tmp_path)
    store.transaction(seed_users)
    outcome = store.transaction(login, "anna", PASSWORD, session_hours=12)
    assert outcome.error is None and outcome.user.role == Role.agent
    assert len(outcome.token) >= 43  # 32 random bytes, url-safe base64
    rows = store.transaction(lambda s: s.execute(select(LoginSession)).scalars().all())
    assert len(rows) == 1
    assert rows[0].token_hash == hashlib.sha256(outcome.token.encode()).hexdigest()
    assert outcome.token not in (rows[0].token_hash, rows[0].csrf_token)
    assert dt.timedelta(hours=11, minutes=59) < rows[0].expires_at - utcnow() <= dt.timedelta(hours=12)
    assert store.transaction(resolve, outcome.token).username == "anna"
    later = utcnow() + dt.timedelta(hours=12, seconds=1)
    assert store.transaction(resolve, outcome.token, later) is None
    assert store.transaction(accounts.logout, outcome.token) is True
    assert store.transaction(resolve, outcome.token) is None
    store.close()


def test_deactivated_user_cannot_log_in_or_use_a_session(tmp_path):
    store = make_store(tmp_path)
    store.transaction(seed_users)
    outcome = store.transaction(login, "anna", PASSWORD, session_hours=1)
    store.transaction(lambda s: s.execute(update(User).where(User.username == "anna").values(active=False)))
    assert store.transaction(resolve, outcome.token) is None
    assert isinstance(store.transaction(login, "anna", PASSWORD, session_hours=1).error, NotAuthenticated)
    store.close()


# --------------------------------------------------------------------------- throttling


def test_throttle_after_five_failures_within_fifteen_minutes(tmp_path):
    store = make_store(tmp_path)
    store.transaction(seed_users)
    for _ in range(5):
        assert isinstance(store.transaction(login, "anna", "wrong password!", session_hours=1).error, NotAuthenticated)
    refused = store.transaction(login, "anna", PASSWORD, session_hours=1)
    assert isinstance(refused.error, RateLimited) and refused.token is None
    # Other users are not affected; 16 minutes later the failures no longer count.
    assert store.transaction(login, "ada", PASSWORD, session_hours=1).error is None
    later = utcnow() + dt.timedelta(minutes=16)
    assert store.transaction(login, "anna", PASSWORD, session_hours=1, now=later).error is None
    failures = store.transaction(lambda s: s.execute(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "login.failed")).scalar())
    assert failures == 5  # refused attempts are not recorded (no endless lock-out)
    store.close()


def test_throttle_counts_unknown_usernames_too_and_success_resets(tmp_path):
    store = make_store(tmp_path)
    store.transaction(seed_users)
    for _ in range(5):
        assert isinstance(store.transaction(login, "nobody", "whatever12345", session_hours=1).error, NotAuthenticated)
    assert isinstance(store.transaction(login, "nobody", "whatever12345", session_hours=1).error, RateLimited)
    for _ in range(4):
        store.transaction(login, "anna", "wrong password!", session_hours=1)
    assert store.transaction(login, "anna", PASSWORD, session_hours=1).error is None
    for _ in range(4):
        assert isinstance(store.transaction(login, "anna", "wrong password!", session_hours=1).error, NotAuthenticated)
    assert store.transaction(login, "anna", PASSWORD, session_hours=1).error is None
    store.close()


async def test_login_throttling_over_http_returns_429(app_client):
    for _ in range(5):
        response = await app_client.post("/api/login", json={"username": "anna", "password": "nope-nope-nope"})
        assert response.status == 401
        assert (await response.json())["error"] == "unauthorized"
    response = await app_client.post("/api/login", json={"username": "anna", "password": PASSWORD})
    assert response.status == 429
    body = await response.json()
    assert body["error"] == "too_many_requests" and "too many failed logins" in body["reason"]
    # The console's login form is refused too (shown again with the reason).
    page = await app_client.get("/console/login")
    token = hidden_field(await page.text(), "csrf_token")
    response = await app_client.post("/console/login", data={"csrf_token": token, "username": "anna",
                                                             "password": PASSWORD}, allow_redirects=False)
    assert response.status == 429
    assert "Too many failed logins" in await response.text()


# --------------------------------------------------------------------------- cookies


async def test_session_cookie_flags(app_client):
    response = await app_client.post("/api/login", json={"username": "anna", "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{auth.SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie
    body = await response.json()
    assert body["role"] == "agent" and body["csrf_token"]
    me = await app_client.get("/api/me")
    assert (await me.json())["csrf_token"] == body["csrf_token"]


async def test_secure_cookie_when_configured(tmp_path):
    app = create_app(make_config(tmp_path, cookie_secure=True))
    app[STORE_KEY].transaction(seed_users)
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/api/login", json={"username": "anna", "password": PASSWORD})
        assert response.status == 200
        assert "Secure" in response.headers["Set-Cookie"]
        page = await client.get("/console/login")
        assert "Secure" in page.headers["Set-Cookie"]


async def test_logout_ends_the_session(app_client):
    csrf = await api_login(app_client, "anna")
    token = app_client.session.cookie_jar.filter_cookies(app_client.make_url("/"))[auth.SESSION_COOKIE].value
    response = await app_client.post("/api/logout", headers={"X-CSRF-Token": csrf})
    assert response.status == 200 and (await response.json()) == {"ok": True}
    count = store_of(app_client).transaction(lambda s: s.execute(select(func.count()).select_from(LoginSession)).scalar())
    assert count == 0
    # The old cookie (replayed) is worthless now.
    app_client.session.cookie_jar.update_cookies({auth.SESSION_COOKIE: token})
    assert (await app_client.get("/api/me")).status == 401


async def test_console_login_and_logout(app_client):
    anonymous = await app_client.get("/console/queue", allow_redirects=False)
    assert anonymous.status == 302 and anonymous.headers["Location"].startswith("/console/login?next=")
    page = await app_client.get("/console/login")
    assert page.status == 200
    assert f"{auth.LOGIN_CSRF_COOKIE}=" in page.headers["Set-Cookie"]
    token = hidden_field(await page.text(), "csrf_token")
    wrong = await app_client.post("/console/login", data={"csrf_token": token, "username": "anna",
                                                          "password": "wrong password"}, allow_redirects=False)
    assert wrong.status == 401 and "Wrong username or password" in await wrong.text()
    page = await app_client.get("/console/login")
    token = hidden_field(await page.text(), "csrf_token")
    ok = await app_client.post("/console/login", data={"csrf_token": token, "username": "anna", "password": PASSWORD,
                                                       "next": "/console/queue"}, allow_redirects=False)
    assert ok.status == 303 and ok.headers["Location"] == "/console/queue"
    queue = await app_client.get("/console/queue")
    html = await queue.text()
    assert queue.status == 200 and "Anna Agent" in html
    csrf = hidden_field(html, "csrf_token")
    out = await app_client.post("/console/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/console/login"
    again = await app_client.get("/console/queue", allow_redirects=False)
    assert again.status == 302


async def test_login_redirect_target_stays_inside_the_console(app_client):
    page = await app_client.get("/console/login?next=https://evil.example/")
    token = hidden_field(await page.text(), "csrf_token")
    assert 'name="next" value="/console"' in await page.text()
    response = await app_client.post("/console/login", data={"csrf_token": token, "username": "anna",
                                                             "password": PASSWORD, "next": "//evil.example"},
                                     allow_redirects=False)
    assert response.headers["Location"] == "/console"


# --------------------------------------------------------------------------- CSRF


async def test_login_form_needs_its_csrf_token(app_client):
    await app_client.get("/console/login")  # sets the double-submit cookie
    missing = await app_client.post("/console/login", data={"username": "anna", "password": PASSWORD},
                                    allow_redirects=False)
    assert missing.status == 403
    forged = await app_client.post("/console/login", data={"csrf_token": "forged", "username": "anna",
                                                           "password": PASSWORD}, allow_redirects=False)
    assert forged.status == 403
    assert auth.SESSION_COOKIE not in app_client.session.cookie_jar.filter_cookies(app_client.make_url("/"))


async def test_api_login_accepts_json_only(app_client):
    # A cross-site <form> can post text/plain or urlencoded bodies, never application/json.
    response = await app_client.post("/api/login", data='{"username": "anna", "password": "%s"}' % PASSWORD,
                                     headers={"Content-Type": "text/plain"})
    assert response.status == 400 and "application/json" in (await response.json())["reason"]


async def test_state_changing_requests_without_csrf_token_are_refused(app_client):
    draft_id = store_of(app_client).transaction(seed_draft)
    csrf = await api_login(app_client, "anna")
    missing = await app_client.post(f"/api/drafts/{draft_id}/approve")
    assert missing.status == 403
    assert "CSRF" in (await missing.json())["reason"]
    wrong = await app_client.post(f"/api/drafts/{draft_id}/approve", headers={"X-CSRF-Token": csrf + "x"})
    assert wrong.status == 403
    form = await app_client.post(f"/console/drafts/{draft_id}/approve", data={"text": "hi"}, allow_redirects=False)
    assert form.status == 403
    logout = await app_client.post("/api/logout")
    assert logout.status == 403
    status = store_of(app_client).transaction(lambda s: s.get(Draft, draft_id).status)
    assert status == DraftStatus.pending
    ok = await app_client.post(f"/api/drafts/{draft_id}/approve", headers={"X-CSRF-Token": csrf})
    assert ok.status == 200


# --------------------------------------------------------------------------- every route


def _protected_routes(app: web.Application):
    """(method, path template, handler) of every /console and /api route but login and static."""
    routes = []
    public = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource):
            continue
        path = resource.canonical
        if not (path == "/console" or path.startswith(("/console/", "/api/"))):
            continue
        if getattr(route.handler, "webcare_public", False):
            public.add(path)
            continue
        routes.append((route.method, path, route.handler))
    return routes, public


def _fill(path: str, draft_id: int) -> str:
    return re.sub(r"\{[^}]+\}", str(draft_id), path)


async def test_every_console_and_api_route_refuses_anonymous_and_wrong_roles(app_client):
    routes, public = _protected_routes(app_client.app)
    assert public == PUBLIC_PATHS  # only the login routes may skip the checks
    assert len(routes) >= 15
    draft_id = store_of(app_client).transaction(seed_draft)
    headers = {"Accept": "text/html,application/json"}

    for method, template, handler in routes:
        roles = getattr(handler, "webcare_roles", None)
        assert roles, f"{method} {template} has no require_role()"
        path = _fill(template, draft_id)
        response = await app_client.request(method, path, headers=headers, allow_redirects=False)
        if template.startswith("/api/"):
            assert response.status == 401, (method, path, response.status)
            if method != "HEAD":
                assert (await response.json())["error"] == "unauthorized"
        else:
            assert response.status in (302, 303), (method, path, response.status)
            assert response.headers["Location"].startswith("/console/login"), (method, path)

    for role, (username, _) in USERS.items():
        app_client.session.cookie_jar.clear()
        csrf = await api_login(app_client, username)
        for method, template, handler in routes:
            if role in handler.webcare_roles:
                continue
            path = _fill(template, draft_id)
            data = {"csrf_token": csrf} if template.startswith("/console") else None
            response = await app_client.request(method, path, headers={**headers, "X-CSRF-Token": csrf},
                                                data=data, allow_redirects=False)
            assert response.status == 403, (role, method, path, response.status)

    # Nothing was decided along the way.
    status = store_of(app_client).transaction(lambda s: s.get(Draft, draft_id).status)
    assert status == DraftStatus.pending


def test_roles_of_the_routes(tmp_path):
    app = create_app(make_config(tmp_path))
    routes, _ = _protected_routes(app)
    by_path = {(method, path): handler.webcare_roles for method, path, handler in routes}
    assert by_path[("GET", "/api/drafts")] == {Role.agent, Role.admin}
    assert by_path[("POST", "/console/drafts/{id}/reject")] == {Role.agent, Role.admin}
    assert by_path[("GET", "/api/me")] == set(Role)
    assert by_path[("GET", "/api/cases/{id}")] == set(Role)  # process owners read cases
    assert by_path[("POST", "/api/cases/{id}/close")] == {Role.agent, Role.admin}
    assert by_path[("POST", "/console/cases/{id}/reply")] == {Role.agent, Role.admin}
    app[STORE_KEY].close()


async def test_process_owner_sees_the_home_page_not_the_queue(app_client):
    await console_login(app_client, "piet")
    home = await app_client.get("/console", allow_redirects=False)
    assert home.status == 200 and "process owner" in await home.text()
    assert (await app_client.get("/console/queue", allow_redirects=False)).status == 403
    assert (await app_client.get("/api/drafts")).status == 403


# --------------------------------------------------------------------------- CLI


def test_cli_users_add_from_stdin(tmp_path, monkeypatch, capsys):
    for key, value in environ(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert cli_main(["users", "add", "Bob", "--role", "process_owner", "--name", "Bob B", "--password-stdin"]) == 0
    assert "added process_owner 'bob'" in capsys.readouterr().out
    store = make_store(tmp_path)
    user = store.transaction(lambda s: s.execute(select(User).where(User.username == "bob")).scalar_one())
    assert user.role == Role.process_owner and user.display_name == "Bob B"
    assert store.transaction(login, "bob", PASSWORD, session_hours=1).error is None
    store.close()

    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert cli_main(["users", "add", "bob", "--role", "agent", "--password-stdin"]) == 1
    assert "already exists" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert cli_main(["users", "add", "carl", "--role", "agent", "--password-stdin"]) == 1
    assert "at least 10" in capsys.readouterr().err


def test_cli_users_add_prompts_twice(tmp_path, monkeypatch, capsys):
    for key, value in environ(tmp_path).items():
        monkeypatch.setenv(key, value)
    answers = iter([PASSWORD, PASSWORD + "!"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert cli_main(["users", "add", "dora", "--role", "admin"]) == 1
    assert "do not match" in capsys.readouterr().err
    answers = iter([PASSWORD, PASSWORD])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert cli_main(["users", "add", "dora", "--role", "admin"]) == 0
    assert "added admin 'dora'" in capsys.readouterr().out
