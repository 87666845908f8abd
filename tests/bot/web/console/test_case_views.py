"""Cases in the console and the JSON API, over the real app (SQLite, SQL CRM in the store)."""
from __future__ import annotations

from typing import Any, Dict

from sqlalchemy import select

from bot.web.keys import CASES_KEY
from bot.cases.escalation import open_case
from bot.store.database import Store
from bot.store.models import (
    AuditEntry,
    Case,
    CaseNote,
    CaseStatus,
    ChannelIdentity,
    Conversation,
    CrmCustomerRecord,
    Customer,
    Draft,
    Mode,
    OutboxItem,
    TrackerEvent,
)
from tests.bot.console_support import (  # noqa: F401  (app_client is a fixture)
    HOSTILE,
    api_login,
    app_client,
    console_login,
    hidden_field,
    seed_draft,
    store_of,
)


def seed_case(client: Any, **draft: Any) -> int:
    # The same database, but not the service's store: as if another replica opened the case,
    # so this service does not fetch its CRM profile (it stays "pending" for the assertions).
    store = Store(store_of(client).engine)
    draft_id = store.transaction(seed_draft, **draft)
    conversation_id = store.transaction(lambda s: s.get(Draft, draft_id).conversation_id)
    case, _ = store.transaction(open_case, conversation_id, "complaint", client.app[CASES_KEY],
                                {"words": ["belachelijk"]})
    return case.id


def case_state(client: Any, case_id: int) -> Dict[str, Any]:
    def read(session: Any) -> Dict[str, Any]:
        case = session.get(Case, case_id)
        return {
            "case": case,
            "conversation": session.get(Conversation, case.conversation_id),
            "outbox": session.execute(select(OutboxItem).where(OutboxItem.conversation_id == case.conversation_id)
                                      .order_by(OutboxItem.id)).scalars().all(),
            "tracker": session.execute(select(TrackerEvent).order_by(TrackerEvent.id)).scalars().all(),
            "audit": session.execute(select(AuditEntry.action).where(AuditEntry.target_type == "case",
                                                                     AuditEntry.target_id == case_id)
                                     .order_by(AuditEntry.id)).scalars().all(),
            "notes": session.execute(select(CaseNote).where(CaseNote.case_id == case_id)).scalars().all(),
        }
    return store_of(client).transaction(read)


async def test_case_queue_and_case_view_show_the_context_escaped(app_client):
    case_id = seed_case(app_client, customer_text=HOSTILE, customer_name="<b>Jan</b>")
    await console_login(app_client, "anna")
    listing = await app_client.get("/console/cases")
    html = await listing.text()
    assert listing.status == 200 and f'href="/console/cases/{case_id}"' in html and "complaint" in html
    assert "telegram · private" in html
    page = await app_client.get(f"/console/cases/{case_id}")
    html = await page.text()
    assert page.status == 200
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>Jan</b>" not in html
    assert "bill_too_high" not in html or "Suggested root cause" in html
    assert "Suggested root cause" in html and "Internal notes" in html
    assert 'name="root_cause"' in html and "service_complaint" in html
    assert "telegram · private" in html and 'id="window"' not in html  # telegram has no messaging window


async def test_console_reply_note_assign_and_close(app_client):
    case_id = seed_case(app_client)
    await console_login(app_client, "anna")
    page = await (await app_client.get(f"/console/cases/{case_id}")).text()
    csrf, token = hidden_field(page, "csrf_token"), hidden_field(page, "token")
    reply = {"csrf_token": csrf, "token": token, "text": "Ik bel je vandaag nog terug."}
    first = await app_client.post(f"/console/cases/{case_id}/reply", data=reply, allow_redirects=False)
    again = await app_client.post(f"/console/cases/{case_id}/reply", data=reply, allow_redirects=False)
    assert first.status == again.status == 303
    state = case_state(app_client, case_id)
    agent_items = [o for o in state["outbox"] if o.source == "agent"]
    assert len(agent_items) == 1 and agent_items[0].payload == {"text": "Ik bel je vandaag nog terug."}
    assert [t.events[0]["event"] for t in state["tracker"]] == ["pause", "bot"]
    assert state["case"].first_response_at is not None

    note = await app_client.post(f"/console/cases/{case_id}/notes",
                                 data={"csrf_token": csrf, "note": "Klant is VIP."}, allow_redirects=False)
    assert note.status == 303
    # a close without a root cause is refused with the reason, and nothing changes
    refused = await app_client.post(f"/console/cases/{case_id}/close",
                                     data={"csrf_token": csrf, "root_cause": "", "resolution": "Opgelost."})
    assert refused.status == 400 and "root cause is required" in await refused.text()
    assert case_state(app_client, case_id)["case"].status != CaseStatus.closed
    closed = await app_client.post(f"/console/cases/{case_id}/close", allow_redirects=False,
                                   data={"csrf_token": csrf, "root_cause": "service_complaint",
                                         "resolution": "Teruggebeld en excuses gemaakt."})
    assert closed.status == 303 and closed.headers["Location"].endswith("done=close")
    state = case_state(app_client, case_id)
    assert state["case"].status == CaseStatus.closed and state["case"].root_cause == "service_complaint"
    assert state["conversation"].mode == Mode.bot
    assert [t.events[0]["event"] for t in state["tracker"]] == ["pause", "bot", "resume"]
    assert state["audit"] == ["case.open", "case.reply", "case.note", "case.close"]
    assert [n.text for n in state["notes"]] == ["Klant is VIP."]


async def test_a_post_without_csrf_is_refused(app_client):
    case_id = seed_case(app_client)
    await console_login(app_client, "anna")
    response = await app_client.post(f"/console/cases/{case_id}/reply", data={"text": "hoi"},
                                     allow_redirects=False)
    assert response.status == 403
    assert [o for o in case_state(app_client, case_id)["outbox"] if o.source == "agent"] == []


async def test_process_owner_may_read_but_not_handle_cases(app_client):
    case_id = seed_case(app_client)
    csrf = await api_login(app_client, "piet")
    assert (await app_client.get(f"/api/cases/{case_id}")).status == 200
    response = await app_client.post(f"/api/cases/{case_id}/reply", json={"text": "hoi"},
                                     headers={"X-CSRF-Token": csrf})
    assert response.status == 403


async def test_api_cases(app_client):
    case_id = seed_case(app_client)
    csrf = await api_login(app_client, "anna")
    headers = {"X-CSRF-Token": csrf}
    listing = await (await app_client.get("/api/cases")).json()
    assert [c["id"] for c in listing["cases"]] == [case_id]
    detail = await (await app_client.get(f"/api/cases/{case_id}")).json()
    assert detail["trigger"] == "complaint" and detail["trigger_details"]["words"] == ["belachelijk"]
    assert [t["text"] for t in detail["transcript"] if t["direction"] == "in"][-1] == "Mijn jaarafrekening is veel te hoog!"
    assert "collega" in detail["transcript"][-1]["text"]  # the handover notice
    assert {r["code"] for r in detail["root_causes"]} >= {"billing_amount", "other"}
    assert detail["crm_status"] == "pending"

    bad = await app_client.post(f"/api/cases/{case_id}/reply", data="{nope", headers=headers)
    assert bad.status == 400 and "malformed JSON" in (await bad.json())["reason"]
    missing = await app_client.post("/api/cases/999/reply", json={"text": "hoi"}, headers=headers)
    assert missing.status == 404
    ok = await app_client.post(f"/api/cases/{case_id}/reply", json={"text": "Hoi!", "token": "abcdefgh1"},
                               headers=headers)
    assert ok.status == 200 and (await ok.json())["duplicate"] is False
    taken = await app_client.post(f"/api/cases/{case_id}/assign", headers=headers)
    assert taken.status == 200
    unknown = await app_client.post(f"/api/cases/{case_id}/close", headers=headers,
                                    json={"root_cause": "nonsense", "resolution": "x"})
    assert unknown.status == 400 and "unknown root cause" in (await unknown.json())["reason"]
    done = await app_client.post(f"/api/cases/{case_id}/close", headers=headers,
                                 json={"root_cause": "billing_amount", "resolution": "Uitgelegd."})
    assert done.status == 200
    late = await app_client.post(f"/api/cases/{case_id}/reply", json={"text": "nog iets"}, headers=headers)
    assert late.status == 409


async def test_an_agent_links_two_channels_to_one_crm_customer(app_client):
    store = store_of(app_client)
    store.transaction(lambda s: s.add(CrmCustomerRecord(customer_number="40001234", name="Jan Klant",
                                                        postcode="1234AB", house_number="12")))
    telegram_case = seed_case(app_client, channel="telegram")
    web_case = seed_case(app_client, channel="webchat")
    csrf = await api_login(app_client, "anna")
    headers = {"X-CSRF-Token": csrf}

    def identity_of(case_id: int) -> int:
        return store.transaction(lambda s: s.get(Conversation, s.get(Case, case_id).conversation_id).identity_id)

    unknown = await app_client.post(f"/api/cases/{web_case}/link", headers=headers,
                                    json={"identity_id": identity_of(web_case), "customer_number": "999"})
    assert unknown.status == 400 and "no customer" in (await unknown.json())["reason"]
    for case_id in (telegram_case, web_case):
        response = await app_client.post(f"/api/cases/{case_id}/link", headers=headers,
                                         json={"identity_id": identity_of(case_id), "customer_number": "40001234"})
        assert response.status == 200, await response.text()
    customers = store.transaction(lambda s: s.execute(
        select(ChannelIdentity.customer_id).distinct()).scalars().all())
    assert len(customers) == 1
    linked = store.transaction(lambda s: s.get(Customer, customers[0]))
    assert linked.crm_ref == "40001234"
    detail = await (await app_client.get(f"/api/cases/{web_case}")).json()
    assert [c["channel"] for c in detail["earlier_conversations"]] == ["telegram"]
    page = await (await app_client.get(f"/console/cases/{web_case}")).text()
    earlier = page[page.index("Earlier conversations"):]
    assert "telegram · private" in earlier  # the history across channels says where each one was
    assert {i["channel"] for i in detail["customer"]["identities"]} == {"telegram", "webchat"}
    # a foreign identity cannot be linked through this case
    foreign = await app_client.post(f"/api/cases/{telegram_case}/link", headers=headers,
                                    json={"identity_id": 999, "customer_number": "40001234"})
    assert foreign.status == 400
