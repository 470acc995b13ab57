"""Alembic migrations, run from code: ``upgrade`` at start-up and ``current`` for /readyz."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from optibridge.store.db import normalize_url

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x0B7B51D6  # PostgreSQL advisory lock: one replica migrates, the others wait


def alembic_config(url: str) -> AlembicConfig:
    _, sync_url = normalize_url(url)
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = sync_url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database to ``revision``; safe when several replicas start at once."""
    config = alembic_config(url)
    engine = create_engine(config.attributes["url"])
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def is_current(url: str) -> bool:
    """Whether the database is at the newest migration."""
    config = alembic_config(url)
    head = ScriptDirectory.from_config(config).get_current_head()
    engine = create_engine(config.attributes["url"])
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision() == head
    finally:
        engine.dispose()
