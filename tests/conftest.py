"""Shared fixtures: the project root and Rasa's model storage for component tests."""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

PROJECT = Path(__file__).resolve().parent.parent

logging.getLogger("rasa").setLevel(logging.WARNING)


@pytest.fixture
def project() -> Path:
    return PROJECT


@pytest.fixture(scope="session")
def rasa(tmp_path_factory: pytest.TempPathFactory):
    """A real Rasa server (trained model, webcare channel) and action server for the session."""
    from bot.rasa.stack import rasa_stack

    with rasa_stack(tmp_path_factory.mktemp("rasa")) as stack:
        yield stack


# ---------------------------------------------------------------- PostgreSQL
# Tests that need PostgreSQL fail (never skip) when the server is down; CI starts it.
POSTGRES_SERVER = os.environ.get("WEBCARE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


@contextmanager
def fresh_postgres_database(prefix: str = "webcare_test") -> Iterator[str]:
    """Create a uniquely named, empty database on the test server; yield its URL; drop it."""
    from bot.store.database import fresh_postgres_database as fresh

    with fresh(POSTGRES_SERVER, prefix) as url:
        yield url


def fresh_store(kind: str, tmp_path: Path, prefix: str) -> Iterator["Store"]:
    """An empty store on ``kind`` ("sqlite": a file in ``tmp_path``; "postgresql": a fresh
    database named after ``prefix``), closed (and dropped) afterwards. For fixtures
    parametrized over both: ``yield from fresh_store(request.param, tmp_path, "webcare_x")``."""
    from bot.store.database import Store

    if kind == "sqlite":
        store = Store.from_url(f"sqlite:///{tmp_path}/{prefix}.db")
        try:
            yield store
        finally:
            store.close()
        return
    with fresh_postgres_database(prefix) as url:
        store = Store.from_url(url)
        try:
            yield store
        finally:
            store.close()


@pytest.fixture(scope="module")
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh PostgreSQL database shared by the tests of one module."""
    with fresh_postgres_database(f"webcare_{request.module.__name__.rsplit('.', 1)[-1]}") as url:
        yield url
