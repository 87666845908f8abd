"""Engines and sessions for the store (SQLite file by default, PostgreSQL by URL)."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import uuid
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import NullPool, QueuePool

from bot.events import Event, EventBus, take
from bot.store.migrate import upgrade

logger = logging.getLogger(__name__)

T = TypeVar("T")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created on first use."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        if database and database != ":memory:":
            # A pool of open connections (SQLAlchemy 1.4 defaults to NullPool for files):
            # opening a connection per transaction and closing it again costs milliseconds per
            # unit of work -- closing the last connection checkpoints the WAL and deletes it.
            # Each connection is used by one thread at a time (Store's executor threads).
            engine = create_engine(url, future=True, poolclass=QueuePool, pool_size=8, max_overflow=8,
                                   connect_args={"timeout": 30, "check_same_thread": False})
        else:
            engine = create_engine(url, future=True, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        path = _sqlite_path(engine.url)
        if path is not None:
            gate = _GATES.setdefault(path, _WriteGate())
            event.listen(engine, "before_cursor_execute", gate.before_execute)
        return engine
    return create_engine(url, future=True, pool_pre_ping=True)


def _sqlite_path(url: Any) -> Optional[str]:
    """The absolute path of a SQLite file URL (None: another database, or in memory)."""
    url = make_url(str(url))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return str(Path(url.database).resolve())


class _WriteGate:
    """One writer at a time per SQLite file in this process, handed over without sleeping.

    SQLite allows one writer; a second one waits in SQLite's busy handler, which sleeps 1, 2,
    5, 10, ... up to 100 ms between tries, so a webhook's short INSERT could wait far longer
    than the write it waits for. Inside :meth:`Store.transaction`, the first writing statement
    (pysqlite begins the transaction right before it) first takes this lock; the transaction
    gives it back once committed or rolled back, and the next writer goes on at once. Reads
    never take it (WAL: readers do not block writers). Writers in other processes still meet
    SQLite's busy handler.
    """

    _WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._local = threading.local()

    def begin(self) -> None:
        self._stack().append(False)

    def end(self) -> None:
        if self._stack().pop():
            self._lock.release()

    def before_execute(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        stack = getattr(self._local, "stack", None)
        if stack and not stack[-1] and statement.lstrip()[:7].upper().startswith(self._WRITES):
            self._lock.acquire()
            stack[-1] = True

    def _stack(self) -> List[bool]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack


_GATES: Dict[str, _WriteGate] = {}


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def ping(engine: Engine) -> None:
    """Raise if the database cannot be reached (creates a new SQLite file)."""
    if _sqlite_path(engine.url) is not None:
        # A new connection, not one from the pool: an open one still works on a file that
        # was deleted or moved away meanwhile.
        probe = create_engine(engine.url, future=True, poolclass=NullPool, connect_args={"timeout": 5})
        try:
            with probe.connect() as connection:
                connection.execute(text("SELECT 1"))
        finally:
            probe.dispose()
        return
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


class Store:
    """The store: one engine, a fresh session per unit of work.

    SQLAlchemy here is synchronous; async code calls :meth:`run`, which executes a
    function with its own session in a worker thread and commits it (or rolls back on error).
    Sessions are never shared between concurrent tasks.

    The events a unit of work recorded (:func:`bot.events.emit`) are published on
    :attr:`events` once its transaction has committed, never when it rolled back.
    """

    def __init__(self, engine: Engine, max_threads: int = 8, events: Optional[EventBus] = None) -> None:
        self.engine = engine
        self.events = events or EventBus()
        self.sessions = sessionmaker(bind=engine, future=True, expire_on_commit=False)
        self._executor = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="store")
        path = _sqlite_path(engine.url)
        self._gate = _GATES.get(path) if path is not None else None  # SQLite: in-process writers take turns

    @classmethod
    def from_url(cls, url: str, migrate: bool = True) -> "Store":
        """Open the store at ``url``, bringing its schema up to date first."""
        engine = make_engine(url)
        if migrate:
            upgrade(engine)
        return cls(engine)

    def transaction(self, fn: "Callable[..., T]", *args: Any, **kwargs: Any) -> "T":
        """Run ``fn(session, *args, **kwargs)`` in one committed transaction, then publish the
        events it emitted (in the calling thread)."""
        result, committed = self._commit(fn, *args, **kwargs)
        self.events.publish(committed)
        return result

    def _commit(self, fn: "Callable[..., T]", *args: Any, **kwargs: Any) -> "Tuple[T, List[Event]]":
        gate = self._gate
        if gate is not None:
            gate.begin()
        try:
            with self.sessions() as session:
                with session.begin():
                    result = fn(session, *args, **kwargs)
                committed = take(session)
        finally:
            if gate is not None:
                gate.end()  # after the commit (or rollback): SQLite's write lock is free again
        return result, committed

    async def run(self, fn: "Callable[..., T]", *args: Any, **kwargs: Any) -> "T":
        """:meth:`transaction` in a worker thread, for async callers; the events are published
        on the caller's event loop."""
        loop = asyncio.get_running_loop()
        result, committed = await loop.run_in_executor(
            self._executor, functools.partial(self._commit, fn, *args, **kwargs))
        self.events.publish(committed)
        return result

    def close(self) -> None:
        """Release the threads and the connection pool."""
        self._executor.shutdown(wait=True)
        self.engine.dispose()


@contextlib.contextmanager
def fresh_postgres_database(server_url: str, prefix: str = "webcare") -> Iterator[str]:
    """Create a uniquely named, empty database on the PostgreSQL server of ``server_url``;
    yield its URL; drop it afterwards (tests and benchmarks)."""
    import psycopg2

    server = make_url(server_url)
    params = dict(host=server.host or "127.0.0.1", port=server.port or 5432, user=server.username)
    if server.password:
        params["password"] = server.password
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(dbname="postgres", **params)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield str(server.set(drivername="postgresql+psycopg2", database=name))
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
