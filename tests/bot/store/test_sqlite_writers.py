"""SQLite store: pooled connections, and in-process writers taking turns (no busy-handler sleeps)."""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.pool import QueuePool

from bot.pipeline.intake import Intake
from bot.store.database import Store, ping
from bot.store.models import Customer, Message
from connectors.base import InboundMessage


@pytest.fixture
def store(tmp_path: Path):
    store = Store.from_url(f"sqlite:///{tmp_path}/w.db")
    yield store
    store.close()


def test_a_sqlite_file_store_keeps_its_connections(store: Store) -> None:
    assert isinstance(store.engine.pool, QueuePool)
    ping(store.engine)


async def test_concurrent_writers_all_commit(store: Store) -> None:
    messages = [InboundMessage("hook", f"m{i}", f"s{i % 7}", f"text {i}") for i in range(120)]
    intake = Intake(store)  # retries a first contact another delivery created meanwhile
    await asyncio.gather(*(intake.accept(m) for m in messages))
    assert store.transaction(lambda s: s.execute(select(func.count()).select_from(Message)).scalar_one()) == 120


def test_a_failed_write_gives_the_turn_back(store: Store) -> None:
    def fail(session):
        session.add(Customer(display_name="rolled back"))
        session.flush()
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.transaction(fail)
    done = threading.Event()

    def write() -> None:
        store.transaction(lambda s: s.add(Customer(display_name="kept")))
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    assert done.wait(10), "the writer after a failed transaction never got its turn"
    thread.join()
    names = store.transaction(lambda s: s.execute(select(Customer.display_name)).scalars().all())
    assert names == ["kept"]


def test_nested_store_transactions_in_one_thread_do_not_deadlock_on_reads(store: Store) -> None:
    def outer(session):
        session.add(Customer(display_name="outer"))
        session.flush()  # holds the write turn
        return store.transaction(lambda s: s.execute(select(func.count()).select_from(Customer)).scalar_one())

    assert store.transaction(outer) == 0  # the inner read sees the committed state only
