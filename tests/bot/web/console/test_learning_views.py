"""Corrections to review in the console (/console/learning) and the JSON API (/api/learning/...)."""
from __future__ import annotations

import re
from typing import Dict, List, Tuple

from aiohttp import FormData
from sqlalchemy import select

from bot.review import decisions
from bot.store.models import AuditEntry, ExampleStatus, Role, TrainingExample, User
from tests.bot.console_support import (  # noqa: F401  (app_client is a fixture)
    HOSTILE,
    api_login,
    app_client,
    console_login,
    hidden_field,
    seed_draft,
    store_of,
)

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
ROUTES = [("GET", "/console/learning"), ("POST", "/console/learning/review"),
          ("GET", "/api/learning/corrections"), ("POST", "/api/learning/corrections/review")]


def decide(client, *texts_and_decisions: Tuple[str, str]) -> List[int]:
    """Drafts decided by the agent through bot.review.decisions; their draft ids."""
    store = store_of(client)
    agent = store.transaction(lambda s: s.execute(select(User).where(User.role == Role.agent)).scalar_one())
    ids = []
    for text, how in texts_and_decisions:
        draft_id = store.transaction(seed_draft, customer_text=text, customer_name="Jan Klant")
        if how == "approve":
            store.transaction(decisions.approve, draft_id, agent)
        elif how == "pick":
            store.transaction(decisions.pick, draft_id, agent, 1)  # → payment_arrangement
        elif how.startswith("edit:"):
            store.transaction(decisions.edit, draft_id, agent, "Bedankt!", how.split(":", 1)[1])
        else:
            store.transaction(decisions.reject, draft_id, agent)
        ids.append(draft_id)
    return ids


def examples_by_text(client) -> Dict[str, TrainingExample]:
    return store_of(client).transaction(lambda s: {e.text: e for e in s.execute(select(TrainingExample)).scalars()})


def row_ids(html: str) -> List[int]:
    return [int(i) for i in re.findall(r'<tr data-id="(\d+)"', html)]


def review_form(csrf: str, ids: List[int], action: str, intent: str = "", status: str = "pending") -> FormData:
    form = FormData()
    form.add_field("csrf_token", csrf)
    form.add_field("status", status)
    form.add_field("page", "1")
    for example_id in ids:
        form.add_field("ids", str(example_id))
    form.add_field("intent", intent)
    form.add_field("action", action)
    return form


async def open_page(client, query: str = "") -> Tuple[str, str]:
    response = await client.get("/console/learning" + query)
    assert response.status == 200, await response.text()
    html = await response.text()
    return html, hidden_field(html, "csrf_token")


# --------------------------------------------------------------------------- the page


async def test_the_page_collects_and_shows_the_corrections_as_a_table(app_client):
    decide(app_client, ("Mijn jaarafrekening is veel te hoog!", "approve"),
           ("kan ik een betalingsregeling krijgen", "pick"), (HOSTILE, "reject"), ("dit telt niet", "edit:"))
    await console_login(app_client, "piet")
    html, _ = await open_page(app_client)
    by_text = examples_by_text(app_client)
    assert set(by_text) == {"Mijn jaarafrekening is veel te hoog!", "kan ik een betalingsregeling krijgen", HOSTILE}
    assert row_ids(html) == sorted(e.id for e in by_text.values())  # oldest first
    assert re.search(r"3 to review · 0 accepted\s+· 0 relabelled · 0 dropped · 3 new<", html)
    assert HOSTILE not in html and ESCAPED in html
    assert "<code>bill_too_high</code> <span class=\"conf\">62%</span>" in html  # the bot's intent + confidence
    assert "<code>payment_arrangement</code> <span class=\"flag\">changed</span>" in html  # the agent's intent
    assert "none: relabel or drop" in html  # the rejected draft has no intent of the agent
    assert "approved as drafted" in html and "picked an alternative" in html and "rejected the draft" in html
    assert html.count("Anna Agent") == 3
    assert '<option value="complaint">complaint</option>' in html and 'value="nlu_fallback"' not in html
    for example in by_text.values():
        assert f'name="ids" value="{example.id}"' in html
    assert 'value="accept"' in html and 'value="relabel"' in html and 'value="drop"' in html
    assert "learning.js" in html and 'href="/console/learning" aria-current="page">Learning</a>' in html
    html_again, _ = await open_page(app_client)
    assert "3 new" not in html_again  # collected once


async def test_the_bulk_form_accepts_relabels_and_drops_with_a_flash(app_client):
    decide(app_client, ("een", "approve"), ("twee", "pick"), ("drie", "reject"), ("vier", "edit:thank"))
    await console_login(app_client, "piet")
    _, csrf = await open_page(app_client)
    by_text = examples_by_text(app_client)

    response = await app_client.post("/console/learning/review", allow_redirects=False,
                                     data=review_form(csrf, [by_text["een"].id, by_text["twee"].id], "accept"))
    assert response.status == 303
    assert response.headers["Location"] == "/console/learning?status=pending&done=accept&n=2"
    html, csrf = await open_page(app_client, "?status=pending&done=accept&n=2")
    assert "2 examples accepted." in html
    assert row_ids(html) == [by_text["drie"].id, by_text["vier"].id]

    response = await app_client.post("/console/learning/review",
                                     data=review_form(csrf, [by_text["drie"].id], "relabel", "complaint"))
    assert response.status == 200 and "1 example relabelled as complaint." in await response.text()
    response = await app_client.post("/console/learning/review",
                                     data=review_form(csrf, [by_text["vier"].id], "drop"))
    html = await response.text()
    assert "1 example dropped." in html and "Nothing to review" in html

    after = examples_by_text(app_client)
    assert {text: (e.status, e.intent) for text, e in after.items()} == {
        "een": (ExampleStatus.accepted, "bill_too_high"), "twee": (ExampleStatus.accepted, "payment_arrangement"),
        "drie": (ExampleStatus.relabelled, "complaint"), "vier": (ExampleStatus.dropped, None)}
    owner_id = store_of(app_client).transaction(
        lambda s: s.execute(select(User.id).where(User.username == "piet")).scalar_one())
    assert {e.reviewed_by for e in after.values()} == {owner_id}

    reviewed, _ = await open_page(app_client, "?status=reviewed")
    assert len(row_ids(reviewed)) == 4 and "dropped" in reviewed and "Piet Owner" in reviewed
    assert "relabelled as <code>complaint</code>" in reviewed


async def test_a_refused_review_shows_the_reason_and_changes_nothing(app_client):
    decide(app_client, ("een", "approve"), ("twee", "reject"))
    await console_login(app_client, "ada")
    _, csrf = await open_page(app_client)
    ids = [e.id for e in examples_by_text(app_client).values()]

    response = await app_client.post("/console/learning/review",
                                     data=review_form(csrf, ids, "relabel", "no_such_intent"))
    html = await response.text()
    assert response.status == 400 and "is not an intent of the domain" in html
    assert all(f'value="{i}" id="example-{i}" checked' in html for i in ids)  # the ticks are kept
    response = await app_client.post("/console/learning/review", data=review_form(csrf, ids, "accept"))
    assert response.status == 400 and "relabel or drop it" in await response.text()
    response = await app_client.post("/console/learning/review", data=review_form(csrf, [], "drop"))
    assert response.status == 400 and "Tick at least one example" in await response.text()
    response = await app_client.post("/console/learning/review", data=review_form(csrf, [987654], "drop"))
    assert response.status == 404
    response = await app_client.post("/console/learning/review", data=review_form("forged", ids, "drop"))
    assert response.status == 403

    assert {e.status for e in examples_by_text(app_client).values()} == {ExampleStatus.pending}
    assert store_of(app_client).transaction(lambda s: s.execute(
        select(AuditEntry).where(AuditEntry.target_type == "training_example")).first()) is None


# --------------------------------------------------------------------------- the API


async def test_the_api_lists_and_reviews(app_client):
    decide(app_client, ("een", "approve"), ("twee", "pick"), ("drie", "reject"))
    csrf = await api_login(app_client, "piet")
    response = await app_client.get("/api/learning/corrections?limit=2")
    assert response.status == 200
    data = await response.json()
    assert data["collected"] == 3 and data["counts"] == {"pending": 3, "accepted": 0, "relabelled": 0, "dropped": 0}
    assert [e["text"] for e in data["examples"]] == ["een", "twee"] and data["limit"] == 2
    first = data["examples"][0]
    assert (first["source"], first["bot_intent"], first["agent_intent"], first["decided_by"]) == (
        "confirmed", "bill_too_high", "bill_too_high", "Anna Agent")
    assert "complaint" in data["intents"]
    ids = [e["id"] for e in data["examples"]]

    response = await app_client.post("/api/learning/corrections/review", headers={"X-CSRF-Token": csrf},
                                     json={"ids": ids, "action": "accept"})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["review"]["count"] == 2 and body["counts"]["accepted"] == 2

    for bad, status in (({"ids": "1", "action": "drop"}, 400), ({"ids": [ids[0]], "action": "keep"}, 400),
                        ({"ids": [ids[0]], "action": "relabel", "intent": "nope"}, 400),
                        ({"ids": [ids[0], True], "action": "drop"}, 400), ({"action": "drop"}, 400),
                        ({"ids": [123456], "action": "drop"}, 404)):
        response = await app_client.post("/api/learning/corrections/review", headers={"X-CSRF-Token": csrf},
                                         json=bad)
        assert response.status == status, (bad, await response.text())
    assert (await app_client.get("/api/learning/corrections?status=bogus")).status == 400
    assert (await app_client.get("/api/learning/corrections?limit=x")).status == 400
    reviewed = await (await app_client.get("/api/learning/corrections?status=accepted")).json()
    assert [e["text"] for e in reviewed["examples"]] == ["een", "twee"]
    assert {e["status"] for e in reviewed["examples"]} == {"accepted"}


# --------------------------------------------------------------------------- who may


async def test_anonymous_users_are_refused_on_every_route(app_client):
    for method, path in ROUTES:
        response = await app_client.request(method, path, allow_redirects=False)
        if path.startswith("/api/"):
            assert response.status == 401, (method, path)
            assert (await response.json())["error"] == "unauthorized"
        else:
            assert response.status in (302, 303), (method, path)
            assert response.headers["Location"].startswith("/console/login"), (method, path)


async def test_agents_are_refused_on_every_route_and_see_no_link(app_client):
    decide(app_client, ("een", "approve"))
    csrf = await api_login(app_client, "anna")
    for method, path in ROUTES:
        data = review_form(csrf, [1], "accept") if path.startswith("/console") and method == "POST" else None
        json = {"ids": [1], "action": "accept"} if path.startswith("/api") and method == "POST" else None
        response = await app_client.request(method, path, headers={"X-CSRF-Token": csrf}, data=data, json=json,
                                            allow_redirects=False)
        assert response.status == 403, (method, path, response.status)
    queue = await (await app_client.get("/console/queue")).text()
    assert "/console/learning" not in queue
    assert examples_by_text(app_client) == {}  # an agent's visit collected nothing either


async def test_the_listing_counts_what_the_model_in_use_has_not_learnt_yet(app_client):
    from bot.learning import registry

    decide(app_client, ("een", "approve"), ("twee", "approve"))
    csrf = await api_login(app_client, "piet")
    data = await (await app_client.get("/api/learning/corrections")).json()
    assert data["model_in_use"] is None  # nothing recorded: no claim about it
    store_of(app_client).transaction(registry.adopt, "starter.tar.gz")
    ids = [e["id"] for e in data["examples"]]
    await app_client.post("/api/learning/corrections/review", headers={"X-CSRF-Token": csrf},
                          json={"ids": ids[:1], "action": "accept"})
    data = await (await app_client.get("/api/learning/corrections")).json()
    assert (data["model_in_use"]["file"], data["model_in_use"]["reviewed_since"]) == ("starter.tar.gz", 1)
    html = await (await app_client.get("/console/learning")).text()
    assert "1 reviewed since the model in use was trained" in html
