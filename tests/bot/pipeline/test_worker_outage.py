"""A Rasa outage: messages wait and are retried with backoff; a long one hands them to a person."""
from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator, Dict, Iterator

import pytest
from sqlalchemy import select, update

from bot.config import DEFAULTS
from bot.pipeline.drafting_policy import DraftingPolicy
from bot.pipeline.intake import store_inbound
from bot.pipeline.rasa_client import RasaClient, RasaReplicas
from bot.rasa.stack import free_port
from bot.store.database import Store
from bot.store.models import Case, Conversation, Direction, Message, utcnow
from bot.events import CaseOpened
from bot.pipeline.leases import claim_conversations
from bot.pipeline.worker import Worker
from connectors.base import InboundMessage
from bot.testing.rasa_standin import FakeRasa, fake_rasa_replicas


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_url(f"sqlite:///{tmp_path}/outage.db")
    yield store
    store.close()


def worker_without_rasa(store: Store, max_attempts: int) -> Worker:
    dead = RasaClient(f"http://127.0.0.1:{free_port()}", timeout_seconds=2)
    return Worker(store, dead, DraftingPolicy.from_config(DEFAULTS["drafting"]), owner="outage-worker",
                  max_attempts=max_attempts)


def receive(store: Store, message_id: str = "m1") -> int:
    inbound = InboundMessage(channel="hook", channel_message_id=message_id, sender_id="42", text="what does it cost?")
    return store.transaction(store_inbound, inbound).conversation_id


async def test_unreachable_rasa_leaves_the_message_waiting_and_backs_off(store: Store) -> None:
    conversation_id = receive(store)
    worker = worker_without_rasa(store, max_attempts=10)
    assert store.transaction(claim_conversations, worker.owner, 1) == [conversation_id]
    await worker._process(conversation_id)
    await worker.rasa.close()
    message = store.transaction(lambda s: s.execute(select(Message)).scalar_one())
    assert message.status == "received" and message.attempts == 1
    assert "unreachable" in message.last_error
    conversation = store.transaction(lambda s: s.get(Conversation, conversation_id))
    assert conversation.lease_owner is None and conversation.lease_until > utcnow()  # backing off
    assert store.transaction(claim_conversations, worker.owner, 1) == []
    assert store.transaction(lambda s: s.execute(select(Case)).scalars().all()) == []


async def test_rasa_down_for_max_attempts_hands_the_message_to_a_person(store: Store) -> None:
    conversation_id = receive(store)
    store.transaction(lambda s: s.execute(update(Message).values(attempts=2)))  # two tries already failed
    worker = worker_without_rasa(store, max_attempts=3)
    assert store.transaction(claim_conversations, worker.owner, 1) == [conversation_id]
    opened: list = []
    store.events.subscribe(CaseOpened, lambda event: opened.append(event.case_id))
    await worker._process(conversation_id)
    await worker.rasa.close()
    message = store.transaction(lambda s: s.execute(select(Message).where(Message.direction == Direction.inbound)).scalar_one())
    assert message.status == "failed" and message.processed_at is not None
    [case] = store.transaction(lambda s: s.execute(select(Case)).scalars().all())
    assert case.trigger == "rasa_unavailable" and case.conversation_id == conversation_id
    assert opened == [case.id]
    conversation = store.transaction(lambda s: s.get(Conversation, conversation_id))
    assert conversation.mode.value == "human"  # an agent answers from here on
    notices = store.transaction(lambda s: s.execute(select(Message).where(Message.direction == Direction.outbound)).scalars().all())
    assert len(notices) == 1  # the customer is told a person will answer


# ---------------------------------------------------------------- one Rasa replica hangs


@pytest.fixture
async def hung_and_healthy() -> AsyncIterator[Dict[str, FakeRasa]]:
    """Two stand-in Rasa replicas: one takes requests and never answers, one answers."""
    async with fake_rasa_replicas(("hung", "hang"), ("healthy", "answer")) as servers:
        yield servers


async def test_a_hung_rasa_replicas_conversation_is_answered_by_the_healthy_one_on_the_retry(
        store: Store, hung_and_healthy) -> None:
    hung, healthy = hung_and_healthy["hung"].url, hung_and_healthy["healthy"].url
    hung_received, healthy_received = hung_and_healthy["hung"].message_ids, hung_and_healthy["healthy"].message_ids
    urls = sorted([hung, healthy], key=lambda url: RasaReplicas([hung, healthy]).for_sender("hook:42")[0] != url)
    assert RasaReplicas(urls).for_sender("hook:42")[0] == hung  # the customer's own replica hangs
    conversation_id = receive(store)
    worker = Worker(store, RasaClient(urls, timeout_seconds=0.5), DraftingPolicy.from_config(DEFAULTS["drafting"]),
                    owner="outage-worker", max_attempts=2)
    opened: list = []
    store.events.subscribe(CaseOpened, lambda event: opened.append(event.case_id))
    try:
        assert store.transaction(claim_conversations, worker.owner, 1) == [conversation_id]
        await worker._process(conversation_id)  # times out at the hung replica: backs off
        message = store.transaction(lambda s: s.execute(select(Message)).scalar_one())
        assert message.status == "received" and message.attempts == 1
        assert hung_received() == [str(message.id)] and healthy_received() == []  # not sent twice at once
        # the backoff is over (1 s): the retry, the last attempt before an agent, goes to the healthy replica
        store.transaction(lambda s: s.execute(update(Conversation).values(lease_until=utcnow())))
        assert store.transaction(claim_conversations, worker.owner, 1) == [conversation_id]
        await worker._process(conversation_id)
    finally:
        await worker.rasa.close()
    assert healthy_received() == [str(message.id)] and hung_received() == [str(message.id)]
    inbound = store.transaction(lambda s: s.get(Message, message.id))
    assert inbound.status == "processed" and inbound.nlu["intent"]["name"] == "tariffs"
    replies = store.transaction(lambda s: s.execute(
        select(Message).where(Message.direction == Direction.outbound)).scalars().all())
    assert [m.text for m in replies] == ["answered by healthy"]
    assert store.transaction(lambda s: s.execute(select(Case)).scalars().all()) == [] and opened == []
    assert store.transaction(lambda s: s.get(Conversation, conversation_id)).mode.value == "bot"
