"""Apply the store's Alembic migrations (the same ones for SQLite and PostgreSQL)."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import text
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")
# Replicas starting together take turns: the first migrates, the others then find nothing to do.
MIGRATION_LOCK_KEY = 0x7765626361726501  # "webcare" + 1


def alembic_config(url: str) -> AlembicConfig:
    """An Alembic configuration for the store at ``url`` (no alembic.ini needed)."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine) -> None:
    """Bring the store at ``engine`` to the newest schema (idempotent; safe when several
    service replicas start at once on one PostgreSQL database)."""
    config = alembic_config(str(engine.url))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # held until this transaction ends
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
