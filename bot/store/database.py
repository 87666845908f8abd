"""Engines and sessions for the store (SQLite file by default, PostgreSQL by URL)."""
from __future__ import annotations

import contextlib
import logging
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url

logger = logging.getLogger(__name__)

T = TypeVar("T")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created on first use."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, future=True, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, future=True, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def ping(engine: Engine) -> None:
    """Raise if the database cannot be reached (creates a new SQLite file)."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


class Store:
    """The store: one engine, a fresh session per unit of work.

    SQLAlchemy here is synchronous; async code calls :meth:`run`, which executes a
    function with its own session in a worker thread and commits it (or rolls back on error).
    Sessions are never shared between concurrent tasks.
    """

    def __init__(self, engine: Engine, max_threads: int = 8) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from sqlalchemy.orm import sessionmaker

        self.engine = engine
        self.sessions = sessionmaker(bind=engine, future=True, expire_on_commit=False)
        self._executor = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="store")

    @classmethod
    def from_url(cls, url: str, migrate: bool = True) -> "Store":
        """Open the store at ``url``, bringing its schema up to date first."""
        engine = make_engine(url)
        if migrate:
            from bot.store.migrate import upgrade

            upgrade(engine)
        return cls(engine)

    def transaction(self, fn: "Callable[..., T]", *args: Any, **kwargs: Any) -> "T":
        """Run ``fn(session, *args, **kwargs)`` in one committed transaction."""
        with self.sessions() as session:
            with session.begin():
                return fn(session, *args, **kwargs)

    async def run(self, fn: "Callable[..., T]", *args: Any, **kwargs: Any) -> "T":
        """:meth:`transaction` in a worker thread, for async callers."""
        import asyncio
        import functools

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(self.transaction, fn, *args, **kwargs)
        )

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
