"""Intake: every inbound message committed once, on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Iterator, List

import pytest
from sqlalchemy import func, select, update

from bot.config import DEFAULTS
from bot.pipeline.drafting_policy import DraftingPolicy
from bot.pipeline.intake import MAX_TEXT_CHARS, AcceptResult, Intake, store_inbound
from bot.pipeline.rasa_client import RasaClient
from bot.store.database import Store
from bot.store.models import ChannelIdentity, Conversation, Customer, Direction, Message
from bot.pipeline.leases import claim_conversations
from bot.pipeline.worker import Job, Worker
from connectors.base import InboundMessage

def inbound(message_id: str = "m1", sender: str = "42", channel: str = "hook", text: str = "hello",
            **kwargs) -> InboundMessage:
    return InboundMessage(channel=channel, channel_message_id=message_id, sender_id=sender, text=text, **kwargs)


def count(store: Store, model) -> int:
    return store.transaction(lambda s: s.execute(select(func.count()).select_from(model)).scalar_one())


def rows(store: Store, model) -> list:
    return store.transaction(lambda s: s.execute(select(model).order_by(model.id)).scalars().all())


class RecordingWorker(Worker):
    """The real worker (owner, capacity), except that it records the hand-over instead of calling Rasa."""

    def __init__(self, store: Store, concurrency: int = 8) -> None:
        super().__init__(store, RasaClient("http://127.0.0.1:9"), DraftingPolicy.from_config(DEFAULTS["drafting"]),
                         concurrency=concurrency, owner="intake-test-worker")
        self.submitted: List[Job] = []
        self.woken = 0

    def submit(self, job: Job) -> None:
        self.submitted.append(job)

    def wake(self) -> None:
        self.woken += 1


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_url(f"sqlite:///{tmp_path}/t.db")
    yield store
    store.close()


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    store = Store.from_url(pg_url)
    # Each test starts empty.
    with store.engine.begin() as connection:
        connection.exec_driver_sql(
            "TRUNCATE outbox, drafts, messages, conversations, channel_identities, customers "
            "RESTART IDENTITY CASCADE"
        )
    yield store
    store.close()


def test_first_message_creates_customer_identity_conversation(store: Store) -> None:
    result = store.transaction(
        store_inbound, inbound(sender="42", sender_name="Ann", language_hint="en-GB", metadata={"k": "v"})
    )
    assert result.duplicate is False and result.truncated is False
    [customer] = rows(store, Customer)
    assert customer.display_name == "Ann" and customer.language == "en"
    [identity] = rows(store, ChannelIdentity)
    assert (identity.channel, identity.external_id, identity.customer_id) == ("hook", "42", customer.id)
    assert identity.reachable is True
    [conversation] = rows(store, Conversation)
    assert conversation.id == result.conversation_id
    assert conversation.rasa_sender_id == "hook:42"
    assert conversation.identity_id == identity.id and conversation.customer_id == customer.id
    assert conversation.channel == "hook" and conversation.language == "en"
    [message] = rows(store, Message)
    assert message.id == result.message_id
    assert message.direction == Direction.inbound
    assert message.status == "received"
    assert message.text == "hello" and message.sender == "customer"
    assert message.channel_message_id == "m1"
    assert message.payload == {"kind": "text", "metadata": {"k": "v"}, "truncated": False}
    assert message.language_hint == "en"
    assert conversation.last_message_at == message.created_at


async def test_duplicate_is_stored_once_and_handed_over_once(store: Store) -> None:
    worker = RecordingWorker(store)
    intake = Intake(store, worker)
    first = await intake.accept(inbound())
    second = await intake.accept(inbound(text="hello again, same id"))
    assert first.duplicate is False
    assert second == AcceptResult(first.message_id, first.conversation_id, duplicate=True)
    assert count(store, Message) == 1
    assert rows(store, Message)[0].text == "hello"
    assert len(worker.submitted) + worker.woken == 1  # the worker heard of it exactly once


async def test_new_message_is_leased_for_the_local_worker(store: Store) -> None:
    worker = RecordingWorker(store)
    result = await Intake(store, worker).accept(inbound(text="what does it cost?"))
    assert result.job is not None and worker.submitted == [result.job]
    assert result.job.message_id == result.message_id
    assert result.job.conversation_id == result.conversation_id
    assert result.job.text == "what does it cost?" and result.job.recipient == "42"
    assert result.job.rasa_sender_id == "hook:42"
    [conversation] = rows(store, Conversation)
    assert conversation.lease_owner == worker.owner and conversation.lease_until is not None


async def test_an_accepted_message_is_never_stranded(store: Store) -> None:
    """Handed to the worker in memory, or free for the worker's next claim: never neither."""
    worker = RecordingWorker(store)
    result = await Intake(store, worker).accept(inbound())
    claimable = store.transaction(claim_conversations, "another-worker", 10)
    assert worker.submitted or claimable == [result.conversation_id]


async def test_leased_conversation_or_full_worker_only_wakes(store: Store) -> None:
    worker = RecordingWorker(store)
    intake = Intake(store, worker)
    await intake.accept(inbound("m1"))
    store.transaction(claim_conversations, worker.owner, 10)  # the worker holds the conversation
    before = (len(worker.submitted), worker.woken)
    second = await intake.accept(inbound("m2"))
    assert second.job is None and not second.duplicate
    assert (len(worker.submitted), worker.woken) == (before[0], before[1] + 1)
    busy = RecordingWorker(store, concurrency=0)
    third = await Intake(store, busy).accept(inbound("m3", sender="other"))
    assert third.job is None and busy.submitted == [] and busy.woken == 1
    assert rows(store, Conversation)[1].lease_owner is None


async def test_without_a_worker_nothing_is_leased(store: Store) -> None:
    result = await Intake(store).accept(inbound())
    assert result.job is None
    assert rows(store, Conversation)[0].lease_owner is None


async def test_same_id_on_another_channel_is_another_message(store: Store) -> None:
    intake = Intake(store)
    a = await intake.accept(inbound(channel="hook"))
    b = await intake.accept(inbound(channel="telegram"))
    assert not a.duplicate and not b.duplicate
    assert a.message_id != b.message_id
    assert a.conversation_id != b.conversation_id
    assert count(store, Message) == 2
    assert count(store, ChannelIdentity) == 2
    assert {c.rasa_sender_id for c in rows(store, Conversation)} == {"hook:42", "telegram:42"}


async def test_second_message_from_same_sender_joins_the_conversation(store: Store) -> None:
    intake = Intake(store)
    a = await intake.accept(inbound("m1"))
    b = await intake.accept(inbound("m2", text="and another thing"))
    other = await intake.accept(inbound("m3", sender="43"))
    assert a.conversation_id == b.conversation_id != other.conversation_id
    assert a.message_id < b.message_id
    assert count(store, Conversation) == 2
    assert count(store, Customer) == 2


async def test_long_text_is_truncated_and_flagged(store: Store) -> None:
    text = "x" * 100_000
    result = await Intake(store).accept(inbound(text=text, metadata={"source": "app"}))
    assert result.truncated is True and result.duplicate is False
    [message] = rows(store, Message)
    assert len(message.text) == MAX_TEXT_CHARS
    assert message.text == text[:MAX_TEXT_CHARS]
    assert message.payload["truncated"] is True
    assert message.payload["metadata"] == {"source": "app", "original_length": 100_000}


async def test_text_of_exactly_the_limit_is_not_truncated(store: Store) -> None:
    result = await Intake(store).accept(inbound(text="y" * MAX_TEXT_CHARS))
    assert result.truncated is False
    [message] = rows(store, Message)
    assert len(message.text) == MAX_TEXT_CHARS and message.payload["truncated"] is False


async def _concurrent_accepts(store: Store) -> None:
    worker = RecordingWorker(store)
    intake = Intake(store, worker)
    results = await asyncio.gather(*(intake.accept(inbound("race", sender="7")) for _ in range(20)))
    assert len({r.message_id for r in results}) == 1
    assert len({r.conversation_id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert count(store, Message) == 1
    assert count(store, ChannelIdentity) == 1
    assert count(store, Conversation) == 1
    assert count(store, Customer) == 1  # the losers' rows were rolled back
    assert len(worker.submitted) + worker.woken == 1  # the worker heard of it exactly once


async def test_concurrent_deliveries_of_a_new_message_sqlite(store: Store) -> None:
    await _concurrent_accepts(store)


async def test_concurrent_deliveries_of_a_new_message_postgresql(pg_store: Store) -> None:
    assert pg_store.engine.dialect.name == "postgresql"
    await _concurrent_accepts(pg_store)


async def test_intake_on_postgresql_basics(pg_store: Store) -> None:
    intake = Intake(pg_store)
    a = await intake.accept(inbound("p1", text="z" * (MAX_TEXT_CHARS + 1)))
    b = await intake.accept(inbound("p1"))
    c = await intake.accept(inbound("p2"))
    assert a.truncated and b.duplicate and not c.duplicate
    assert a.conversation_id == c.conversation_id
    assert count(pg_store, Message) == 2


def test_a_blocked_customer_who_writes_again_is_reachable_again(store: Store) -> None:
    from bot.store.models import ChannelIdentity

    store.transaction(store_inbound, InboundMessage("hook", "r-1", "77", "hi"))
    store.transaction(lambda s: s.execute(update(ChannelIdentity).values(reachable=False)))
    store.transaction(store_inbound, InboundMessage("hook", "r-2", "77", "I unblocked you"))
    assert store.transaction(lambda s: s.execute(select(ChannelIdentity.reachable)).scalar_one()) is True


def _first_contact_job_matches_the_stored_rows(store: Store) -> None:
    """A first contact's job is built from the values just inserted (no re-reads): it must be
    exactly the job the worker would read back from the store."""
    from bot.pipeline.worker import next_job

    message = inbound("fc-1", sender="fc", text="/start", sender_name="Fien", language_hint="nl-BE",
                      metadata={"command": "start"})
    result = store.transaction(store_inbound, message, "w-1")
    assert result.job is not None and not result.duplicate
    conversation = store.transaction(lambda s: s.get(Conversation, result.conversation_id))
    assert conversation.lease_owner == "w-1" and conversation.lease_until is not None
    assert conversation.mode.value == "bot" and conversation.last_message_at is not None
    assert store.transaction(next_job, result.conversation_id, "w-1") == result.job
    assert result.job.recipient == "fc" and result.job.command == "start" and result.job.language == "nl"
    # a long first message: truncated, and the job says so
    long = store.transaction(store_inbound, inbound("fc-2", sender="fc-long", text="y" * (MAX_TEXT_CHARS + 5)), "w-1")
    assert long.truncated and long.job is not None and long.job.truncated and len(long.job.text) == MAX_TEXT_CHARS
    assert store.transaction(next_job, long.conversation_id, "w-1") == long.job
    # without a local worker the new conversation is free for any worker
    free = store.transaction(store_inbound, inbound("fc-3", sender="fc-free"))
    assert free.job is None
    assert store.transaction(lambda s: s.get(Conversation, free.conversation_id)).lease_owner is None
    assert store.transaction(claim_conversations, "w-2", 10) == [free.conversation_id]


def test_first_contact_job_matches_the_stored_rows_sqlite(store: Store) -> None:
    _first_contact_job_matches_the_stored_rows(store)


def test_first_contact_job_matches_the_stored_rows_postgresql(pg_store: Store) -> None:
    _first_contact_job_matches_the_stored_rows(pg_store)


async def test_messages_arriving_together_share_commits_and_free_places(store: Store) -> None:
    """Group commit: concurrent webhooks are stored in fewer transactions than messages, every
    one answered with its own result; no more conversations leased than the worker has room for."""
    worker = RecordingWorker(store, concurrency=3)
    intake = Intake(store, worker)
    transactions = []
    run = store.run

    async def counting_run(fn, *args, **kwargs):
        transactions.append(fn.__name__)
        return await run(fn, *args, **kwargs)

    store.run = counting_run  # type: ignore[method-assign]
    results = await asyncio.gather(*(intake.accept(inbound(f"g{i}", sender=f"s{i % 10}")) for i in range(40)))
    assert len(transactions) < 40
    assert [r.duplicate for r in results] == [False] * 40
    assert len({r.message_id for r in results}) == 40 and count(store, Message) == 40
    assert count(store, Conversation) == 10  # the same sender's messages joined one conversation
    assert len(worker.submitted) == 3 and worker.woken == 37
    assert {j.message_id for j in worker.submitted} <= {r.message_id for r in results if r.job is not None}
    again = await asyncio.gather(*(intake.accept(inbound(f"g{i}", text="again")) for i in range(5)))
    assert all(r.duplicate for r in again) and [r.message_id for r in again] == [r.message_id for r in results[:5]]


async def test_a_batch_that_meets_a_concurrent_writer_is_stored_one_by_one(store: Store, monkeypatch) -> None:
    import bot.pipeline.intake as intake_module
    from sqlalchemy.exc import IntegrityError

    def conflict(session, messages, owner, leases):
        raise IntegrityError("INSERT", {}, Exception("another replica was first"))

    monkeypatch.setattr(intake_module, "store_batch", conflict)
    worker = RecordingWorker(store)
    results = await asyncio.gather(*(Intake(store, worker).accept(inbound(f"c{i}", sender=f"c{i}")) for i in range(3)))
    assert [r.duplicate for r in results] == [False] * 3 and count(store, Message) == 3
    assert len(worker.submitted) + worker.woken == 3
