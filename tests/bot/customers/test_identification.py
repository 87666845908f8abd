"""The bot's identification: the CRM lookup is recorded as a claim; only an agent links."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import select

from bot.cases import escalation as cases
from bot.accounts import create_user
from bot.cases.escalation import default_settings, open_case
from bot.customers.crm.http import HttpCrm
from bot.customers.crm.sql import SqlCrm
from bot.customer_texts import customer_text
from bot.customers.identification import identify
from bot.pipeline.intake import store_inbound
from bot.rasa.stack import free_port
from bot.store.database import Store
from bot.store.models import Conversation, CrmCustomerRecord, Customer, OutboxItem
from bot.pipeline.leases import claim_conversations
from bot.pipeline.worker import next_job
from connectors.base import InboundMessage


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_url(f"sqlite:///{tmp_path}/t.db")
    store.transaction(lambda s: s.add(CrmCustomerRecord(customer_number="40001234", name="Jan Klant",
                                                        postcode="1234AB", house_number="12A")))
    yield store
    store.close()


def job(store: Store, message_id: str = "m1") -> Any:
    received = store.transaction(store_inbound, InboundMessage(
        channel="hook", channel_message_id=message_id, sender_id="42", text="mijn klantnummer is 40001234"))
    store.transaction(claim_conversations, "w", 10)
    return store.transaction(next_job, received.conversation_id, "w")


def told(store: Store) -> str:
    [item] = store.transaction(lambda s: s.execute(select(OutboxItem)).scalars().all())
    return item.payload["text"]


def claimed(store: Store, conversation_id: int) -> Any:
    return store.transaction(lambda s: s.get(Conversation, conversation_id).claimed_crm_ref)


async def test_a_found_number_is_a_claim_not_a_link(store: Store) -> None:
    current = job(store)
    assert await identify(store, SqlCrm(store), current, {"customer_number": "40001234"}, 2.0) == "found"
    assert claimed(store, current.conversation_id) == "40001234"
    assert told(store) == customer_text("identify_found", None)
    # nothing linked on the customer's word
    assert store.transaction(lambda s: s.execute(select(Customer.crm_ref)).scalars().all()) == [None]

    # an agent confirms it from the case: linked, and the claim is settled
    agent = store.transaction(lambda s: create_user(s, "anna", "correct horse battery", "agent"))
    case, _ = store.transaction(open_case, current.conversation_id, "request_human", default_settings())
    detail = store.transaction(cases.case_detail, case.id)
    assert detail["claimed_crm_ref"] == "40001234"
    store.transaction(cases.link_customer, case.id, agent, detail["identity_id"], "40001234")
    assert claimed(store, current.conversation_id) is None
    assert store.transaction(lambda s: s.execute(select(Customer.crm_ref)).scalar_one()) == "40001234"


async def test_postcode_and_house_number_find_the_customer(store: Store) -> None:
    current = job(store)
    found = await identify(store, SqlCrm(store), current, {"postcode": "1234 ab", "house_number": "12a"}, 2.0)
    assert found == "found" and claimed(store, current.conversation_id) == "40001234"


async def test_unknown_details_are_not_found(store: Store) -> None:
    current = job(store)
    assert await identify(store, SqlCrm(store), current, {"customer_number": "999999"}, 2.0) == "not_found"
    assert claimed(store, current.conversation_id) is None
    assert told(store) == customer_text("identify_not_found", None)


async def test_a_crm_that_is_down_is_told_and_nothing_changes(store: Store) -> None:
    current = job(store)
    crm = HttpCrm(f"http://127.0.0.1:{free_port()}", timeout_seconds=0.5)
    await crm.start()
    try:
        assert await identify(store, crm, current, {"customer_number": "40001234"}, 1.0) == "unavailable"
    finally:
        await crm.stop()
    assert claimed(store, current.conversation_id) is None
    assert told(store) == customer_text("identify_unavailable", None)
