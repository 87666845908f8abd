"""A case's CRM profile and slots are added after it opened; a CRM that is down never blocks it."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.cases.enrichment import enrich, pending_cases
from bot.cases.escalation import default_settings, open_case
from bot.customers.crm.http import HttpCrm
from bot.customers.crm.sql import SqlCrm
from bot.pipeline.intake import store_inbound
from bot.store.database import Store
from bot.store.models import Case, Conversation, CrmContract, CrmCustomerRecord, Customer
from connectors.base import InboundMessage


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_url(f"sqlite:///{tmp_path}/t.db")
    yield store
    store.close()


def a_case(store: Store, crm_ref: Any = None) -> int:
    received = store.transaction(store_inbound, InboundMessage(
        channel="hook", channel_message_id="m1", sender_id="42", text="mijn rekening klopt niet"))

    def link(session: Any) -> None:
        conversation = session.get(Conversation, received.conversation_id)
        session.get(Customer, conversation.customer_id).crm_ref = crm_ref
    store.transaction(link)
    case, _ = store.transaction(open_case, received.conversation_id, "complaint", default_settings())
    return case.id


async def fake_rasa(delay: float = 0.0) -> TestServer:
    async def tracker(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.json_response({"sender_id": request.match_info["sender"],
                                  "slots": {"language": "nl", "escalation_reason": None, "postcode": "1234AB"}})
    app = web.Application()
    app.router.add_get("/conversations/{sender}/tracker", tracker)
    server = TestServer(app)
    await server.start_server()
    return server


async def test_crm_down_the_case_is_open_and_marked_unavailable_within_the_timeout(store: Store) -> None:
    case_id = a_case(store, crm_ref="40001234")  # committed before any CRM call
    assert store.transaction(pending_cases) == [case_id]

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.json_response({})
    app = web.Application()
    app.router.add_get("/customers/{number}", slow)
    crm_server = TestServer(app)
    await crm_server.start_server()
    rasa = await fake_rasa()
    crm = HttpCrm(str(crm_server.make_url("")).rstrip("/"), timeout_seconds=5.0)
    await crm.start()
    try:
        started = time.perf_counter()
        status = await enrich(store, case_id, crm, str(rasa.make_url("")), crm_timeout_seconds=0.5)
        elapsed = time.perf_counter() - started
    finally:
        await crm.stop()
        await crm_server.close()
        await rasa.close()
    assert status == "unavailable" and elapsed < 3.0
    case = store.transaction(lambda s: s.get(Case, case_id))
    assert case.crm_status == "unavailable" and case.crm_profile is None
    assert case.slots == {"language": "nl", "postcode": "1234AB"}  # None-valued slots left out
    assert store.transaction(pending_cases) == []


async def test_sql_crm_profile_is_stored_with_the_case(store: Store) -> None:
    def seed(session: Any) -> None:
        session.add(CrmCustomerRecord(customer_number="40001234", name="Jan Klant", postcode="1234AB",
                                      house_number="12"))
        session.flush()
        session.add(CrmContract(contract_id="C-1", customer_number="40001234", product="Stroom vast 3 jaar",
                                status="active"))
    store.transaction(seed)
    case_id = a_case(store, crm_ref="40001234")
    crm = SqlCrm(store)
    status = await enrich(store, case_id, crm, None, crm_timeout_seconds=2.0)
    case = store.transaction(lambda s: s.get(Case, case_id))
    assert status == "ok" and case.crm_status == "ok"
    assert case.crm_profile["customer"]["name"] == "Jan Klant"
    assert case.crm_profile["contracts"][0]["product"] == "Stroom vast 3 jaar"


async def test_an_unlinked_customer_and_an_unknown_number(store: Store) -> None:
    case_id = a_case(store)
    assert await enrich(store, case_id, SqlCrm(store), None, 2.0) == "not_linked"


async def test_unknown_number_is_not_found(tmp_path: Path) -> None:
    store = Store.from_url(f"sqlite:///{tmp_path}/u.db")
    try:
        case_id = a_case(store, crm_ref="77777777")
        assert await enrich(store, case_id, SqlCrm(store), None, 2.0) == "not_found"
    finally:
        store.close()
