"""The JSON API (bot/web/api/drafts.py) over the real app."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.customer_texts import customer_text
from bot.store.models import AuditEntry, Conversation, Draft, DraftStatus, Mode, OutboxItem
from tests.bot.console_support import (  # noqa: F401  (app_client is a fixture)
    ALTERNATIVES,
    DRAFTED,
    HOSTILE,
    api_login,
    app_client,
    seed_draft,
    store_of,
)


async def agent(client):
    csrf = await api_login(client, "anna")
    return {"X-CSRF-Token": csrf}


def state(client, draft_id):
    def read(session):
        draft = session.get(Draft, draft_id)
        rows = session.execute(select(OutboxItem).where(OutboxItem.idempotency_key.like(f"draft:{draft_id}:%"))
                               .order_by(OutboxItem.id)).scalars().all()
        audit = session.execute(select(AuditEntry.action).where(AuditEntry.target_type == "draft",
                                                                AuditEntry.target_id == draft_id)).scalars().all()
        conversation = session.get(Conversation, draft.conversation_id)
        return draft, rows, audit, conversation

    return store_of(client).transaction(read)


async def test_me(app_client):
    headers = await agent(app_client)
    response = await app_client.get("/api/me")
    body = await response.json()
    assert response.status == 200
    assert body["user"]["username"] == "anna" and body["user"]["display_name"] == "Anna Agent"
    assert body["role"] == "agent" and body["csrf_token"] == headers["X-CSRF-Token"]


async def test_login_errors_are_json_with_a_reason(app_client):
    for body, reason in [("{not json", "malformed JSON"), ("[1, 2]", "JSON object"),
                         ('{"username": "anna"}', "password"), ('{"password": "x"}', "username")]:
        response = await app_client.post("/api/login", data=body, headers={"Content-Type": "application/json"})
        assert response.status == 400, body
        payload = await response.json()
        assert payload["error"] == "bad_request" and reason in payload["reason"], payload
    wrong = await app_client.post("/api/login", json={"username": "anna", "password": "not the password"})
    assert wrong.status == 401 and (await wrong.json()) == {"error": "unauthorized",
                                                            "reason": "wrong username or password"}


async def test_queue_and_detail(app_client):
    headers = await agent(app_client)
    draft_id = store_of(app_client).transaction(seed_draft, customer_text=HOSTILE)
    response = await app_client.get("/api/drafts")
    assert response.status == 200 and response.content_type == "application/json"
    body = await response.json()
    assert body["sla_seconds"] == 300 and body["count"] == 1 and body["now"]
    [row] = body["drafts"]
    assert row["id"] == draft_id and row["customer_text"] == HOSTILE and row["intent"] == "bill_too_high"
    detail = await (await app_client.get(f"/api/drafts/{draft_id}")).json()
    assert detail["draft"]["alternatives"][0]["intent"] == "meter_reading"
    assert detail["draft"]["conversation"]["messages"][-1]["text"] == HOSTILE
    assert headers


async def test_approve(app_client):
    headers = await agent(app_client)
    draft_id = store_of(app_client).transaction(seed_draft)
    response = await app_client.post(f"/api/drafts/{draft_id}/approve", headers=headers)
    assert response.status == 200
    body = await response.json()
    assert body["draft"]["status"] == "approved" and body["draft"]["decided_by"]["display_name"] == "Anna Agent"
    assert [item["idempotency_key"] for item in body["outbox"]] == [f"draft:{draft_id}:0", f"draft:{draft_id}:1"]
    draft, rows, audit, _ = state(app_client, draft_id)
    assert draft.status == DraftStatus.approved and [r.payload for r in rows] == DRAFTED
    assert audit == ["draft.approve"]


async def test_edit(app_client):
    headers = await agent(app_client)
    draft_id = store_of(app_client).transaction(seed_draft)
    response = await app_client.post(f"/api/drafts/{draft_id}/edit", headers=headers,
                                     json={"text": "Ik zoek het voor je uit.", "intent": "complaint"})
    assert response.status == 200, await response.text()
    draft, rows, audit, _ = state(app_client, draft_id)
    assert draft.status == DraftStatus.edited and draft.corrected_intent == "complaint"
    assert [(r.idempotency_key, r.payload) for r in rows] == [(f"draft:{draft_id}:0",
                                                               {"text": "Ik zoek het voor je uit."})]
    assert audit == ["draft.edit"]


async def test_pick(app_client):
    headers = await agent(app_client)
    draft_id = store_of(app_client).transaction(seed_draft)
    for bad in ("0", True, None, 0.0):  # parsed by the web layer: a 400 naming the field, nothing changed
        refused = await app_client.post(f"/api/drafts/{draft_id}/pick", headers=headers, json={"index": bad})
        assert refused.status == 400 and (await refused.json())["details"] == {"field": "index"}
        assert state(app_client, draft_id)[0].status == DraftStatus.pending
    response = await app_client.post(f"/api/drafts/{draft_id}/pick", headers=headers, json={"index": 0})
    assert response.status == 200
    draft, rows, audit, _ = state(app_client, draft_id)
    assert draft.status == DraftStatus.picked and draft.corrected_intent == "meter_reading"
    assert [(r.idempotency_key, r.payload) for r in rows] == [(f"draft:{draft_id}:0", ALTERNATIVES[0]["messages"][0])]
    assert audit == ["draft.pick"]


async def test_reject(app_client):
    headers = await agent(app_client)
    draft_id = store_of(app_client).transaction(seed_draft)
    response = await app_client.post(f"/api/drafts/{draft_id}/reject", headers=headers,
                                     json={"reason": "needs a human"})
    assert response.status == 200
    draft, rows, audit, conversation = state(app_client, draft_id)
    assert draft.status == DraftStatus.rejected
    assert [(r.idempotency_key, r.payload) for r in rows] == [
        (f"draft:{draft_id}:handover", {"text": customer_text("handed_to_agent", "nl")})]
    assert conversation.mode == Mode.human and conversation.assigned_agent_id == draft.decided_by
    assert audit == ["draft.reject"]


async def test_reject_without_a_body(app_client):
    headers = await agent(app_client)
    draft_id = store_of(app_client).transaction(seed_draft)
    assert (await app_client.post(f"/api/drafts/{draft_id}/reject", headers=headers)).status == 200


@pytest.mark.parametrize("action, body", [("approve", None), ("edit", {"text": "hallo"}), ("pick", {"index": 1}),
                                          ("reject", {})])
async def test_deciding_twice_is_409(app_client, action, body):
    headers = await agent(app_client)
    draft_id = store_of(app_client).transaction(seed_draft)
    assert (await app_client.post(f"/api/drafts/{draft_id}/approve", headers=headers)).status == 200
    response = await app_client.post(f"/api/drafts/{draft_id}/{action}", headers=headers, json=body)
    assert response.status == 409
    assert await response.json() == {"error": "conflict", "reason": "already approved by Anna Agent",
                                     "details": {"status": "approved", "decided_by": "Anna Agent"}}


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/api/drafts/999", None), ("POST", "/api/drafts/999/approve", None),
    ("POST", "/api/drafts/999/edit", {"text": "x"}), ("POST", "/api/drafts/999/pick", {"index": 0}),
    ("POST", "/api/drafts/999/reject", None), ("GET", "/api/drafts/abc", None), ("GET", "/api/nothing", None),
])
async def test_unknown_draft_is_404(app_client, method, path, body):
    headers = await agent(app_client)
    response = await app_client.request(method, path, headers=headers, json=body)
    assert response.status == 404
    assert (await response.json())["error"] == "not_found"


@pytest.mark.parametrize("action, raw, reason", [
    ("edit", "{oops", "malformed JSON"),
    ("edit", '{"intent": "x"}', "missing field 'text'"),
    ("edit", '{"text": ""}', "empty"),
    ("edit", '{"text": 5}', "string"),
    ("edit", '{"text": "%s"}' % ("x" * 4097), "4096"),
    ("pick", "{}", "missing field 'index'"),
    ("pick", '{"index": "1"}', "whole number"),
    ("pick", '{"index": 7}', "no alternative 7"),
    ("reject", '"just a string"', "JSON object"),
    ("approve", "{broken", "malformed JSON"),
])
async def test_bad_input_is_400_and_changes_nothing(app_client, action, raw, reason):
    headers = await agent(app_client)
    draft_id = store_of(app_client).transaction(seed_draft)
    response = await app_client.post(f"/api/drafts/{draft_id}/{action}", data=raw,
                                     headers={**headers, "Content-Type": "application/json"})
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "bad_request" and reason in body["reason"], body
    draft, rows, audit, _ = state(app_client, draft_id)
    assert draft.status == DraftStatus.pending and rows == [] and audit == []


async def test_wrong_method_is_json_405(app_client):
    await agent(app_client)
    response = await app_client.get("/api/drafts/1/approve")
    assert response.status == 405 and (await response.json())["error"] == "method_not_allowed"


async def test_logout(app_client):
    headers = await agent(app_client)
    response = await app_client.post("/api/logout", headers=headers)
    assert response.status == 200
    assert (await app_client.get("/api/me")).status == 401
