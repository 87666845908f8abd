"""A Rasa outage: messages wait and are retried with backoff; a long one hands them to a person."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import select, update

from bot.config import DEFAULTS
from bot.drafting import DraftingPolicy
from bot.intake import store_inbound
from bot.rasa_client import RasaClient
from bot.rasa_stack import free_port
from bot.store.database import Store
from bot.store.models import Case, Conversation, Direction, Message, utcnow
from bot.worker import Worker, claim_conversations
from connectors.base import InboundMessage


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
    opened = []
    worker.on_case = opened.append
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
