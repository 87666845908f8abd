"""The Alembic migrations build exactly the models' schema, on SQLite and PostgreSQL."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, Table, insert, inspect, text
from sqlalchemy.engine import Engine

from bot.store.database import Store, make_engine
from bot.store.migrate import alembic_config, upgrade
from bot.store.models import Base, Message, OutboxItem, utcnow
from tests.conftest import fresh_postgres_database

@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/fresh/m.db")
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    """A fresh, empty PostgreSQL database (fails, not skips, when the server is down)."""
    with fresh_postgres_database("webcare_migrations") as url:
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


def head() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def check(engine: Engine) -> None:
    assert inspect(engine).get_table_names() == []
    upgrade(engine)
    upgrade(engine)  # idempotent
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head()]
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], f"migrations and models differ: {diff}"
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) | {"alembic_version"} == tables


def test_sqlite(sqlite_engine: Engine) -> None:
    check(sqlite_engine)


def test_postgresql(pg_engine: Engine) -> None:
    assert pg_engine.dialect.name == "postgresql"
    check(pg_engine)


def test_store_from_url_migrates_and_reopens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    Store.from_url(url).close()
    store = Store.from_url(url)  # already at head: nothing to do, no error
    try:
        with store.engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        store.close()


def test_the_comparison_would_notice_a_difference(sqlite_engine: Engine) -> None:
    """Guard against a vacuous check: a schema that lacks an index is reported."""
    upgrade(sqlite_engine)
    with sqlite_engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_outbox_due"))
    with sqlite_engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [(d[0], d[1].name) for d in diff] == [("add_index", "ix_outbox_due")]


def test_replicas_starting_together_migrate_once_on_postgresql(pg_engine: Engine) -> None:
    """Four service replicas starting at once on an empty database: all come up, one schema."""
    from concurrent.futures import ThreadPoolExecutor

    engines = [make_engine(str(pg_engine.url)) for _ in range(4)]
    try:
        with ThreadPoolExecutor(len(engines)) as pool:
            list(pool.map(upgrade, engines))  # raises if any replica failed
    finally:
        for engine in engines:
            engine.dispose()
    with pg_engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head()]


def _one_conversation(connection: Any, old: Dict[str, Table], now: Any) -> int:
    """A customer, their identity and a conversation, in the tables as an earlier revision left them."""
    customer = connection.execute(insert(old["customers"]).values(flags=[], created_at=now)).inserted_primary_key[0]
    identity = connection.execute(insert(old["channel_identities"]).values(
        customer_id=customer, channel="hook", external_id="42", reachable=True, created_at=now)).inserted_primary_key[0]
    return connection.execute(insert(old["conversations"]).values(
        customer_id=customer, identity_id=identity, channel="hook", rasa_sender_id="hook:42", mode="bot",
        created_at=now, last_message_at=now, contact_watermark=0)).inserted_primary_key[0]


def _on(backend: str, tmp_path: Path, prefix: str, run: Any) -> None:
    """``run(url)`` on a SQLite file or a fresh PostgreSQL database."""
    if backend == "sqlite":
        run(f"sqlite:///{tmp_path}/old.db")
    else:
        with fresh_postgres_database(prefix) as url:
            run(url)


def _tables_as_they_are(connection: Any) -> Dict[str, Table]:
    """The tables of the database as an earlier revision left them (not the models' columns)."""
    metadata = MetaData()
    metadata.reflect(bind=connection)
    return dict(metadata.tables)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_0009_gives_the_outbound_messages_already_stored_their_purpose(backend: str, tmp_path: Path) -> None:
    """Rows written before 0009: the service's own texts are told apart by their outbox keys."""
    def run(url: str) -> None:
        engine = make_engine(url)
        try:
            config = alembic_config(url)
            with engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "0008")
            keys = {"in": None, "reply:1:0": "answer", "draft:3:0": "answer", "case:4:reply:tok:handover": "answer",
                    "ack:2": "ack", "case:4:handover": "handover", "draft:3:handover": "handover",
                    "notice:1:too_long": "notice", "identify:1": "notice", "stop:1": "notice",
                    "opt_in:1": "notice", "subscribe:1:opt_in": "notice", "csat:5": "csat",
                    "csat:5:thanks": "csat", "broadcast:1:1": "broadcast", "unlogged": "answer"}
            now = utcnow()
            with engine.begin() as connection:  # the tables as they were at 0008 (reflected)
                old = _tables_as_they_are(connection)
                conversation = _one_conversation(connection, old, now)
                ids = {}
                for key in keys:
                    ids[key] = connection.execute(insert(old[Message.__tablename__]).values(
                        conversation_id=conversation, direction="in" if key == "in" else "out", channel="hook",
                        sender="customer" if key == "in" else "bot", payload={}, attempts=0,
                        created_at=now)).inserted_primary_key[0]
                    if key not in ("in", "unlogged"):
                        connection.execute(insert(old[OutboxItem.__tablename__]).values(
                            idempotency_key=key, conversation_id=conversation, message_id=ids[key], channel="hook",
                            recipient="42", payload={}, source="bot", status="sent", attempts=0,
                            next_attempt_at=now, created_at=now))
            upgrade(engine)
            with engine.connect() as connection:
                purposes = dict(connection.execute(text("SELECT id, purpose FROM messages")).all())
            assert {key: purposes[ids[key]] for key in keys} == keys
        finally:
            engine.dispose()

    _on(backend, tmp_path, "webcare_migration_0009", run)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_0010_gives_outbox_items_their_purpose_and_conversations_private(backend: str, tmp_path: Path) -> None:
    """Rows written before 0010: an outbox item takes its message's purpose (a broadcast without
    a message: broadcast); every conversation is private."""
    def run(url: str) -> None:
        engine = make_engine(url)
        try:
            config = alembic_config(url)
            with engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "0009")
            now = utcnow()
            with engine.begin() as connection:
                old = _tables_as_they_are(connection)
                conversation = _one_conversation(connection, old, now)
                keys = {"ack:1": "ack", "reply:1:0": "answer", "broadcast:1:7": "broadcast"}
                for key, purpose in keys.items():
                    message_id = None
                    if key != "broadcast:1:7":
                        message_id = connection.execute(insert(old["messages"]).values(
                            conversation_id=conversation, direction="out", channel="hook", sender="bot", payload={},
                            attempts=0, created_at=now, purpose=purpose)).inserted_primary_key[0]
                    connection.execute(insert(old["outbox"]).values(
                        idempotency_key=key, conversation_id=conversation if message_id else None,
                        message_id=message_id, channel="hook", recipient="42", payload={},
                        source="broadcast" if message_id is None else "bot", status="sent", attempts=0,
                        next_attempt_at=now, created_at=now))
            upgrade(engine)
            with engine.connect() as connection:
                purposes = dict(connection.execute(text("SELECT idempotency_key, purpose FROM outbox")).all())
                visibility = connection.execute(text("SELECT visibility FROM conversations")).scalars().all()
            assert purposes == keys
            assert visibility == ["private"]
        finally:
            engine.dispose()

    _on(backend, tmp_path, "webcare_migration_0010", run)
