"""Events: published once a unit of work has committed, never after a rollback."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator, List

import pytest
from sqlalchemy import select

from bot.events import CaseOpened, EventBus, OutboxQueued, emit
from bot.pipeline.outbox import enqueue
from bot.store.database import Store
from bot.store.models import OutboxItem


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_url(f"sqlite:///{tmp_path}/events.db")
    yield store
    store.close()


def queue(session, key: str = "k1") -> None:  # type: ignore[no-untyped-def]
    enqueue(session, key=key, channel="webchat", recipient="r", payload={"text": "hoi"}, source="bot")


def test_a_committed_unit_of_work_publishes_its_events_once(store: Store) -> None:
    seen: List[object] = []
    store.events.subscribe(OutboxQueued, seen.append)
    store.transaction(queue)
    assert seen == [OutboxQueued("webchat")]
    store.transaction(queue)  # the same idempotency key: nothing new queued, nothing published
    assert seen == [OutboxQueued("webchat")]


def test_a_rolled_back_unit_of_work_publishes_nothing(store: Store) -> None:
    seen: List[object] = []
    store.events.subscribe(OutboxQueued, seen.append)

    def queue_then_fail(session) -> None:  # type: ignore[no-untyped-def]
        queue(session)
        raise RuntimeError("the unit of work fails after queuing")

    with pytest.raises(RuntimeError):
        store.transaction(queue_then_fail)
    assert seen == []
    assert store.transaction(lambda s: s.execute(select(OutboxItem)).scalars().all()) == []


async def test_store_run_publishes_on_the_awaiting_event_loop(store: Store) -> None:
    threads: List[int] = []
    store.events.subscribe(CaseOpened, lambda event: threads.append(threading.get_ident()))
    await store.run(lambda session: emit(session, CaseOpened(7)))
    assert threads == [threading.get_ident()]  # the loop's thread, not the store's worker thread


def test_a_failing_listener_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    seen: List[object] = []

    def broken(event: object) -> None:
        raise ValueError("listener bug")

    bus.subscribe(CaseOpened, broken)
    bus.subscribe(CaseOpened, seen.append)
    bus.publish([CaseOpened(1), OutboxQueued("x")])
    assert seen == [CaseOpened(1)]
    assert "listener" in caplog.text and "failed" in caplog.text
