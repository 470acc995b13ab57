"""What every part of the store shares: the database, the clock, dialect-aware inserts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from optibridge.store.db import Database
from optibridge.store.schema import Base

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class StoreBase:
    def __init__(self, database: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = database
        self.clock = clock

    def insert_ignoring_duplicates(self, model: type[Base] | Table) -> Insert:
        """INSERT that skips rows whose unique key already exists (the exactly-once seam)."""
        table = model if isinstance(model, Table) else cast(Table, model.__table__)
        if self.db.sqlite:
            return sqlite.insert(table).on_conflict_do_nothing()
        return postgresql.insert(table).on_conflict_do_nothing()

    async def insert_many_ignoring(self, session: AsyncSession, model: type[Base] | Table,
                                   rows: Sequence[dict[str, Any]]) -> None:
        """Bulk insert through the session's connection: the Core executemany path, not
        the ORM's per-row bookkeeping (several times faster at 10,000 rows)."""
        if not rows:
            return
        connection = await session.connection()
        statement = self.insert_ignoring_duplicates(model)
        for part in chunks(rows, 5_000):
            await connection.execute(statement, list(part))
