"""Per-intent thresholds on the web: ``/api/thresholds`` and ``/console/thresholds`` over the
real app (process owners read, admins approve; agents and anonymous users are refused)."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, List

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from bot.config import LearningConfig
from bot.store.models import AuditEntry, Draft, DraftStatus, IntentThreshold, Mode
from bot.web.app import create_app
from bot.web.keys import STORE_KEY, WORKER_KEY
from tests.bot.console_support import (
    HOSTILE,
    api_login,
    console_login,
    hidden_field,
    make_config,
    seed_draft,
    seed_users,
    store_of,
)

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture
async def client(tmp_path: Path):  # type: ignore[no-untyped-def]
    """The real app with a lenient target (90 %, 10 verdicts) so a few dozen verdicts suffice."""
    config = make_config(tmp_path)
    config = dataclasses.replace(config, learning=LearningConfig.parse({"target_precision": 0.9, "min_verdicts": 10}))
    app = create_app(config)
    app[STORE_KEY].transaction(seed_users)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def seed_verdicts(session: Any, intent: str, confidences: List[float], status: DraftStatus) -> None:
    """Drafts as the worker writes them, decided with ``status`` (the decision paths themselves
    are tested in tests/bot/learning)."""
    for confidence in confidences:
        draft_id = seed_draft(session, intent=intent, confidence=confidence, history=False)
        session.execute(update(Draft).where(Draft.id == draft_id).values(status=status))


def seed_tariffs(client: TestClient) -> None:
    """45 right verdicts at 0.70-0.79 and 5 wrong at 0.55: 0.70 reaches 90 % (lower bound 92 %)."""
    def seed(session: Any) -> None:
        seed_verdicts(session, "tariffs", [0.70 + (i % 10) * 0.01 for i in range(45)], DraftStatus.approved)
        seed_verdicts(session, "tariffs", [0.55] * 5, DraftStatus.rejected)
        seed_verdicts(session, "greet", [0.9] * 3, DraftStatus.approved)
    store_of(client).transaction(seed)


def decide_tariffs(client: TestClient, confidence: float) -> bool:
    return client.app[WORKER_KEY].policy.decide(intent="tariffs", confidence=confidence, mode=Mode.bot,
                                                channel="webchat").auto_send


def approved_rows(client: TestClient) -> List[IntentThreshold]:
    return store_of(client).transaction(lambda s: s.execute(select(IntentThreshold)).scalars().all())


# --------------------------------------------------------------------------- who may


def _routes(app: web.Application) -> List[tuple]:
    routes = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith(("/api/thresholds", "/console/thresholds")) and route.method != "HEAD":
            routes.append((route.method, path))
    return routes


async def test_every_route_refuses_anonymous_users_agents_and_owners_on_writes(client) -> None:
    routes = _routes(client.app)
    assert sorted(routes) == [
        ("DELETE", "/api/thresholds/{intent}"), ("GET", "/api/thresholds"), ("GET", "/console/thresholds"),
        ("POST", "/api/thresholds/{intent}"), ("POST", "/console/thresholds/{intent}"),
        ("POST", "/console/thresholds/{intent}/remove")]
    seed_tariffs(client)

    def path_of(template: str) -> str:
        return template.replace("{intent}", "tariffs")

    for method, template in routes:  # anonymous
        response = await client.request(method, path_of(template), json={"threshold": 0.9}, allow_redirects=False)
        if template.startswith("/api/"):
            assert response.status == 401, (method, template)
            assert (await response.json())["error"] == "unauthorized"
        else:
            assert response.status in (302, 303) and response.headers["Location"].startswith("/console/login")

    for username, refused in (("anna", routes), ("piet", [r for r in routes if r[0] != "GET"])):
        client.session.cookie_jar.clear()
        csrf = await api_login(client, username)
        for method, template in refused:
            form = {"csrf_token": csrf, "threshold": "0.9"} if template.startswith("/console") else None
            response = await client.request(method, path_of(template), headers={"X-CSRF-Token": csrf}, data=form,
                                            json=None if form else {"threshold": 0.9}, allow_redirects=False)
            assert response.status == 403, (username, method, template, response.status)

    assert approved_rows(client) == []  # nothing changed along the way
    assert store_of(client).transaction(lambda s: s.execute(
        select(AuditEntry).where(AuditEntry.target_type == "intent_threshold")).all()) == []


async def test_a_write_without_the_csrf_token_is_refused(client) -> None:
    seed_tariffs(client)
    await api_login(client, "ada")
    assert (await client.post("/api/thresholds/tariffs", json={"threshold": 0.9})).status == 403
    assert approved_rows(client) == []


# --------------------------------------------------------------------------- the API


async def test_api_lists_suggestions_and_an_admin_approves_and_removes(client) -> None:
    seed_tariffs(client)
    await api_login(client, "piet")  # a process owner reads
    data = await (await client.get("/api/thresholds")).json()
    assert (data["target"], data["min_verdicts"], data["global_threshold"]) == (0.9, 10, 0.8)
    rows = {row["intent"]: row for row in data["intents"]}
    assert list(rows) == ["tariffs", "greet"]
    tariffs = rows["tariffs"]
    assert (tariffs["verdicts"], tariffs["right"], tariffs["current"], tariffs["current_source"]) == (50, 45, 0.8, "global")
    assert [band["n"] for band in tariffs["bands"]] == [0, 5, 0, 45, 0, 0, 0]
    suggestion = tariffs["suggestion"]
    assert (suggestion["action"], suggestion["threshold"], suggestion["change"]) == ("set", 0.7, "lower")
    assert suggestion["evidence"]["n"] == 45 and suggestion["evidence"]["precision"] == 1.0
    assert suggestion["evidence"]["interval"] == [pytest.approx(45 / (45 + 1.959964 ** 2), abs=1e-4), 1.0]
    assert suggestion["evidence"]["auto_send_share"] == 0.9
    assert rows["greet"]["suggestion"]["action"] == "keep" and "only 3 verdicts" in rows["greet"]["suggestion"]["reason"]

    client.session.cookie_jar.clear()
    csrf = await api_login(client, "ada")
    headers = {"X-CSRF-Token": csrf}
    assert not decide_tariffs(client, 0.75)
    for bad in ({}, {"threshold": "0.7"}, {"threshold": 0.2}, {"threshold": None}):
        response = await client.post("/api/thresholds/tariffs", json=bad, headers=headers)
        assert response.status == 400, bad
        assert (await response.json())["error"] == "bad_request"
    too_low = await client.post("/api/thresholds/tariffs", json={"threshold": 0.5}, headers=headers)  # 45 of 50
    assert too_low.status == 400 and "do not support it" in (await too_low.json())["reason"]
    unsupported = await client.post("/api/thresholds/greet", json={"threshold": 0.7}, headers=headers)
    assert unsupported.status == 400  # 3 verdicts cannot lower greet's threshold

    approved = await client.post("/api/thresholds/tariffs", json={"threshold": 0.7}, headers=headers)
    assert approved.status == 200
    body = await approved.json()
    assert body["threshold"] == 0.7 and body["approved_by"]["display_name"] == "Ada Admin"
    assert body["evidence"]["n"] == 45 and body["evidence"]["target"] == 0.9
    assert decide_tariffs(client, 0.75)  # the worker's policy in this process, at once
    assert not decide_tariffs(client, 0.65)
    data = await (await client.get("/api/thresholds")).json()
    assert data["approved"] == {"tariffs": 0.7}
    assert data["intents"][0]["current_source"] == "approved"

    removed = await client.delete("/api/thresholds/tariffs", headers=headers)
    assert removed.status == 200 and (await removed.json())["removed"]["threshold"] == 0.7
    assert not decide_tariffs(client, 0.75)
    missing = await client.delete("/api/thresholds/tariffs", headers=headers)
    assert missing.status == 404 and (await missing.json())["error"] == "not_found"
    actions = store_of(client).transaction(lambda s: s.execute(
        select(AuditEntry.action).where(AuditEntry.target_type == "intent_threshold").order_by(AuditEntry.id)
    ).scalars().all())
    assert actions == ["threshold.approve", "threshold.remove"]


# --------------------------------------------------------------------------- the console page


async def test_process_owner_reads_the_page_without_apply_buttons(client) -> None:
    seed_tariffs(client)
    await console_login(client, "piet")
    response = await client.get("/console/thresholds")
    html = await response.text()
    assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
    assert 'data-intent="tariffs"' in html and 'data-intent="greet"' in html
    assert "<strong>0.70</strong> (lower than now)" in html
    assert "n = 45 at 0.70 or above" in html and "precision 100.0 %" in html
    assert "95 % interval 92.1 %–100.0 %" in html
    assert "0.80 (global" in html
    assert "threshold-apply" not in html and "Apply</button>" not in html
    assert html.count("<meter") == 3  # tariffs: two bands with verdicts; greet: one


async def test_agents_and_anonymous_users_get_no_page(client) -> None:
    anonymous = await client.get("/console/thresholds", allow_redirects=False)
    assert anonymous.status == 302 and anonymous.headers["Location"].startswith("/console/login")
    await console_login(client, "anna")
    assert (await client.get("/console/thresholds", allow_redirects=False)).status == 403


async def test_admin_applies_the_suggestion_and_removes_it(client) -> None:
    seed_tariffs(client)
    await console_login(client, "ada")
    html = await (await client.get("/console/thresholds")).text()
    csrf = hidden_field(html, "csrf_token")
    assert 'action="/console/thresholds/tariffs"' in html
    value = re.search(r'action="/console/thresholds/tariffs".*?name="threshold"[^>]*value="([^"]*)"', html, re.S)
    assert value and value.group(1) == "0.70"  # the suggested value, editable

    refused = await client.post("/console/thresholds/tariffs", data={"csrf_token": csrf, "threshold": "0.5"},
                                allow_redirects=False)
    text = await refused.text()
    assert refused.status == 400 and 'role="alert"' in text and "do not support it" in text
    assert re.search(r'name="threshold"[^>]*value="0.5"', text)  # what the admin typed is kept
    bad = await client.post("/console/thresholds/tariffs", data={"csrf_token": csrf, "threshold": "hoog"},
                            allow_redirects=False)
    assert bad.status == 400 and "must be a number" in await bad.text()

    done = await client.post("/console/thresholds/tariffs", data={"csrf_token": csrf, "threshold": "0,72"},
                             allow_redirects=False)
    assert done.status == 303 and done.headers["Location"] == "/console/thresholds?done=approved&intent=tariffs"
    assert [(r.intent, r.threshold) for r in approved_rows(client)] == [("tariffs", 0.72)]
    assert decide_tariffs(client, 0.72) and not decide_tariffs(client, 0.71)
    page = await (await client.get(done.headers["Location"])).text()
    assert "Threshold approved for tariffs" in page
    assert "0.72 (approved, approved by Ada Admin" in page
    assert 'action="/console/thresholds/tariffs/remove"' in page

    removed = await client.post("/console/thresholds/tariffs/remove", data={"csrf_token": csrf}, allow_redirects=False)
    assert removed.status == 303 and "done=removed" in removed.headers["Location"]
    assert approved_rows(client) == []
    again = await client.post("/console/thresholds/tariffs/remove", data={"csrf_token": csrf}, allow_redirects=False)
    assert again.status == 404 and "no approved threshold" in await again.text()


async def test_intent_names_are_escaped_and_each_is_one_path_segment(client) -> None:
    store_of(client).transaction(lambda s: seed_verdicts(s, HOSTILE, [0.9] * 2, DraftStatus.approved))
    await console_login(client, "ada")
    html = await (await client.get("/console/thresholds")).text()
    assert HOSTILE not in html and ESCAPED in html
    assert 'action="/console/thresholds/%3Cscript%3Ealert%281%29%3C%2Fscript%3E"' in html
    csrf = hidden_field(html, "csrf_token")
    done = await client.post("/console/thresholds/%3Cscript%3Ealert%281%29%3C%2Fscript%3E",
                             data={"csrf_token": csrf, "threshold": "0.95"}, allow_redirects=False)
    assert done.status == 303
    assert [(r.intent, r.threshold) for r in approved_rows(client)] == [(HOSTILE, 0.95)]
    page = await (await client.get(done.headers["Location"])).text()
    assert HOSTILE not in page and f"Threshold approved for {ESCAPED}" in page


async def test_empty_state(client) -> None:
    await console_login(client, "piet")
    html = await (await client.get("/console/thresholds")).text()
    assert 'id="thresholds-empty"' in html
