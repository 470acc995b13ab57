"""What every part of the store shares: the database, the clock, dialect-aware inserts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

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
        if self.db.sqlite:
            return sqlite.insert(model).on_conflict_do_nothing()
        return postgresql.insert(model).on_conflict_do_nothing()

    async def insert_many_ignoring(self, session: AsyncSession, model: type[Base] | Table,
                                   rows: Sequence[dict[str, Any]]) -> None:
        for part in chunks(rows, 5_000):
            await session.execute(self.insert_ignoring_duplicates(model), list(part))
