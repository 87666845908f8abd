"""The console's pages and forms (bot/web/console/) over the real app."""
from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select

from bot.store.models import AuditEntry, Conversation, Draft, DraftStatus, Mode, OutboxItem, utcnow
from tests.bot.console_support import (  # noqa: F401  (app_client is a fixture)
    ALTERNATIVES,
    DRAFTED,
    HOSTILE,
    app_client,
    console_login,
    hidden_field,
    seed_draft,
    store_of,
)

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def outbox(client, draft_id):
    return store_of(client).transaction(lambda s: s.execute(
        select(OutboxItem).where(OutboxItem.idempotency_key.like(f"draft:{draft_id}:%")).order_by(OutboxItem.id)
    ).scalars().all())


def draft_of(client, draft_id):
    return store_of(client).transaction(lambda s: s.get(Draft, draft_id))


def audit(client, draft_id):
    return store_of(client).transaction(lambda s: s.execute(
        select(AuditEntry.action).where(AuditEntry.target_type == "draft", AuditEntry.target_id == draft_id)
    ).scalars().all())


async def open_draft(client, draft_id):
    response = await client.get(f"/console/drafts/{draft_id}")
    assert response.status == 200
    html = await response.text()
    return html, hidden_field(html, "csrf_token")


async def test_queue_lists_pending_drafts_oldest_first_with_sla_states(app_client):
    now = utcnow()
    store = store_of(app_client)
    fresh = store.transaction(seed_draft, customer_name="Fresh", created_at=now - dt.timedelta(seconds=10))
    late = store.transaction(seed_draft, customer_name="Late", created_at=now - dt.timedelta(seconds=400))
    soon = store.transaction(seed_draft, customer_name="Soon", created_at=now - dt.timedelta(seconds=250))
    await console_login(app_client, "anna")
    response = await app_client.get("/console/queue")
    html = await response.text()
    assert response.status == 200
    rows = re.findall(r'<tr class="sla-([a-z-]+)" data-id="(\d+)">', html)
    assert rows == [("overdue", str(late)), ("due-soon", str(soon)), ("ok", str(fresh))]
    assert re.search(r"6m 4\ds", html) and "overdue" in html and "due soon" in html
    assert f'href="/console/drafts/{late}"' in html
    assert html.count("telegram · private") == 3  # channel and visibility on every row, in words
    assert "console.js" in html and "Content-Security-Policy" in response.headers
    assert response.headers["Cache-Control"] == "no-store"


async def test_queue_is_empty_state(app_client):
    await console_login(app_client, "anna")
    html = await (await app_client.get("/console/queue")).text()
    assert 'id="queue-empty" class="empty">' in html  # visible (not hidden)


async def test_hostile_customer_text_is_escaped(app_client):
    draft_id = store_of(app_client).transaction(
        seed_draft, customer_text=HOSTILE, customer_name=HOSTILE,
        messages=[{"text": f"Je schreef: {HOSTILE}"}],
        alternatives=[{"intent": "greet", "confidence": 0.1, "messages": [{"text": HOSTILE}]}])
    await console_login(app_client, "anna")
    html, _ = await open_draft(app_client, draft_id)
    assert HOSTILE not in html
    assert html.count(ESCAPED) >= 4  # the message, the name, the textarea and the alternative
    queue = await (await app_client.get("/console/queue")).text()
    assert HOSTILE not in queue and ESCAPED in queue


async def test_draft_page_shows_everything_an_agent_needs(app_client):
    draft_id = store_of(app_client).transaction(seed_draft)
    await console_login(app_client, "anna")
    html, csrf = await open_draft(app_client, draft_id)
    # The conversation so far, in order, as bubbles.
    bubbles = re.findall(r'<li class="bubble (in|out)', html)
    assert bubbles == ["in", "out", "in"]
    assert html.index("Hallo") < html.index("Hoi! Waarmee") < html.index("Mijn jaarafrekening is veel te hoog!")
    # Intent, confidence, reason, the editable reply, alternatives, the four actions and their keys.
    assert "bill_too_high" in html and "62%" in html and "confidence 0.62 below the threshold 0.80" in html
    assert re.search(r'<textarea id="reply-text" name="text"[^>]*>Wat vervelend', html)
    assert "meter_reading" in html and "21%" in html and ALTERNATIVES[0]["messages"][0]["text"] in html
    for label in ("Approve <kbd>a</kbd>", "Send edited", "Pick 1 <kbd>1</kbd>", "Pick 2 <kbd>2</kbd>",
                  "Reject and take over <kbd>r</kbd>", "Keyboard shortcuts"):
        assert label in html, label
    assert f'action="/console/drafts/{draft_id}/approve"' in html
    assert csrf and f'<meta name="csrf-token" content="{csrf}">' in html


async def test_approve_form(app_client):
    draft_id = store_of(app_client).transaction(seed_draft)
    await console_login(app_client, "anna")
    _, csrf = await open_draft(app_client, draft_id)
    response = await app_client.post(f"/console/drafts/{draft_id}/approve", data={"csrf_token": csrf},
                                     allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == f"/console/queue?done=approved&d={draft_id}"
    assert [(r.idempotency_key, r.payload) for r in outbox(app_client, draft_id)] == [
        (f"draft:{draft_id}:0", DRAFTED[0]), (f"draft:{draft_id}:1", DRAFTED[1])]
    assert draft_of(app_client, draft_id).status == DraftStatus.approved
    assert audit(app_client, draft_id) == ["draft.approve"]
    queue = await (await app_client.get(response.headers["Location"])).text()
    assert f"Draft #{draft_id} approved and sent." in queue


async def test_edit_form_then_next_draft(app_client):
    store = store_of(app_client)
    first = store.transaction(seed_draft, created_at=utcnow() - dt.timedelta(minutes=3))
    second = store.transaction(seed_draft)
    await console_login(app_client, "anna")
    _, csrf = await open_draft(app_client, first)
    response = await app_client.post(f"/console/drafts/{first}/edit", allow_redirects=False,
                                     data={"csrf_token": csrf, "text": "Ik kijk ernaar!", "intent": "complaint"})
    assert response.status == 303
    assert response.headers["Location"] == f"/console/drafts/{second}?done=edited&d={first}"
    [row] = outbox(app_client, first)
    assert row.idempotency_key == f"draft:{first}:0" and row.payload == {"text": "Ik kijk ernaar!"}
    draft = draft_of(app_client, first)
    assert draft.status == DraftStatus.edited and draft.corrected_intent == "complaint"
    assert audit(app_client, first) == ["draft.edit"]


async def test_edit_form_with_empty_text_shows_the_reason(app_client):
    draft_id = store_of(app_client).transaction(seed_draft)
    await console_login(app_client, "anna")
    _, csrf = await open_draft(app_client, draft_id)
    response = await app_client.post(f"/console/drafts/{draft_id}/edit", data={"csrf_token": csrf, "text": "  "})
    assert response.status == 400
    assert "the edited text is empty" in await response.text()
    assert draft_of(app_client, draft_id).status == DraftStatus.pending and outbox(app_client, draft_id) == []


async def test_pick_form(app_client):
    draft_id = store_of(app_client).transaction(seed_draft)
    await console_login(app_client, "anna")
    _, csrf = await open_draft(app_client, draft_id)
    response = await app_client.post(f"/console/drafts/{draft_id}/pick", data={"csrf_token": csrf, "index": "1"},
                                     allow_redirects=False)
    assert response.status == 303
    rows = outbox(app_client, draft_id)
    assert [r.idempotency_key for r in rows] == [f"draft:{draft_id}:0", f"draft:{draft_id}:1"]
    assert [r.payload for r in rows] == ALTERNATIVES[1]["messages"]
    draft = draft_of(app_client, draft_id)
    assert draft.status == DraftStatus.picked and draft.corrected_intent == "payment_arrangement"
    assert audit(app_client, draft_id) == ["draft.pick"]
    bad = await app_client.post(f"/console/drafts/{draft_id}/pick", data={"csrf_token": csrf, "index": "x"})
    assert bad.status in (400, 409)


async def test_reject_form_sets_human_mode(app_client):
    draft_id = store_of(app_client).transaction(seed_draft)
    await console_login(app_client, "anna")
    _, csrf = await open_draft(app_client, draft_id)
    response = await app_client.post(f"/console/drafts/{draft_id}/reject",
                                     data={"csrf_token": csrf, "reason": "angry customer"}, allow_redirects=False)
    assert response.status == 303
    [row] = outbox(app_client, draft_id)
    assert row.idempotency_key == f"draft:{draft_id}:handover" and "collega" in row.payload["text"]
    draft = draft_of(app_client, draft_id)
    assert draft.status == DraftStatus.rejected
    conversation = store_of(app_client).transaction(lambda s: s.get(Conversation, draft.conversation_id))
    assert conversation.mode == Mode.human and conversation.assigned_agent_id == draft.decided_by
    assert audit(app_client, draft_id) == ["draft.reject"]


async def test_stale_form_is_409_with_who_decided(app_client):
    draft_id = store_of(app_client).transaction(seed_draft)
    await console_login(app_client, "anna")
    _, csrf = await open_draft(app_client, draft_id)
    assert (await app_client.post(f"/console/drafts/{draft_id}/approve", data={"csrf_token": csrf},
                                  allow_redirects=False)).status == 303
    again = await app_client.post(f"/console/drafts/{draft_id}/reject", data={"csrf_token": csrf})
    assert again.status == 409
    html = await again.text()
    assert "already approved by Anna Agent" in html
    assert 'id="approve-form"' not in html  # a decided draft has no action buttons
    assert len(outbox(app_client, draft_id)) == 2


async def test_unknown_draft_is_404(app_client):
    await console_login(app_client, "anna")
    assert (await app_client.get("/console/drafts/999")).status == 404
    _, csrf = await open_draft(app_client, store_of(app_client).transaction(seed_draft))
    response = await app_client.post("/console/drafts/999/approve", data={"csrf_token": csrf})
    assert response.status == 404


async def test_static_files_are_served_without_login(app_client):
    for name, kind in (("console.js", "javascript"), ("console.css", "text/css")):
        response = await app_client.get(f"/console/static/{name}")
        assert response.status == 200 and kind in response.headers["Content-Type"]
    js = await (await app_client.get("/console/static/console.js")).text()
    assert "innerHTML" not in js  # customer text only ever goes through textContent
    assert "/api/drafts" in js and "setTimeout(pollQueue, 2000)" in js
    assert "channelLabel(d.channel, d.visibility)" in js  # polled rows show channel · visibility too
