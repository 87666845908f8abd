"""Shared fixtures: the project root and Rasa's model storage for component tests."""
from __future__ import annotations

import logging
import os
import uuid
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
    from bot.rasa_stack import rasa_stack

    with rasa_stack(tmp_path_factory.mktemp("rasa")) as stack:
        yield stack


# ---------------------------------------------------------------- PostgreSQL
# Tests that need PostgreSQL fail (never skip) when the server is down; CI starts it.
POSTGRES_SERVER = os.environ.get("WEBCARE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


@contextmanager
def fresh_postgres_database(prefix: str = "webcare_test") -> Iterator[str]:
    """Create a uniquely named, empty database; yield its URL; drop it afterwards."""
    import psycopg2
    from sqlalchemy.engine import make_url

    server = make_url(POSTGRES_SERVER)
    params = dict(host=server.host, port=server.port or 5432, user=server.username)
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


@pytest.fixture(scope="module")
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh PostgreSQL database shared by the tests of one module."""
    with fresh_postgres_database(f"webcare_{request.module.__name__.rsplit('.', 1)[-1]}") as url:
        yield url
