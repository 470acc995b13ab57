"""What every part of the store shares: the database, the clock, dialect-aware inserts."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, TypeVar, cast

import orjson
from psycopg import AsyncConnection
from psycopg.errors import UniqueViolation
from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    CursorResult,
    Executable,
    Result,
    SQLColumnExpression,
    String,
    Table,
    bindparam,
    func,
    select,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.selectable import TableValuedAlias

from optibridge.store.db import Database, Turn
from optibridge.store.schema import Base

T = TypeVar("T")


def _values_of(keys: list[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A row's values in ``keys``' order as a tuple (``itemgetter`` in C: a page has
    10,000 rows)."""
    if len(keys) == 1:
        return lambda row: (row[keys[0]],)
    return itemgetter(*keys)


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _plain(value: Any) -> Any:
    """A value as the driver takes it in an array (an enum as its value)."""
    return value.value if isinstance(value, enum.Enum) else value


def table_of(model: type[Base] | Table) -> Table:
    """The table a model maps (or the table itself)."""
    return model if isinstance(model, Table) else cast(Table, model.__table__)


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched."""
    return cast(CursorResult[Any], result).rowcount


class StoreBase:
    def __init__(self, database: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = database
        self.clock = clock
        self._compiled: dict[tuple[str, tuple[str, ...]], tuple[str, list[str] | None]] = {}

    @property
    def writes_take_turns(self) -> bool:
        """Writes go one at a time through one connection (SQLite), so what a caller
        writes waits for every other writer; else they go side by side (PostgreSQL)."""
        return self.db.sqlite

    async def write_statement(self, statement: Executable, *,
                              turn: Turn = Turn.BACKGROUND) -> int:
        """One statement in a write transaction of its own (``Database.write_driver``);
        the rows it touched."""
        def execute(connection: Connection) -> int:
            return rowcount(connection.execute(statement))
        return await self.db.write_driver(execute, turn=turn)

    def insert_ignoring_duplicates(self, model: type[Base] | Table) -> Insert:
        """INSERT that skips rows whose unique key already exists (the exactly-once seam)."""
        table = table_of(model)
        if self.db.sqlite:
            return sqlite.insert(table).on_conflict_do_nothing()
        return postgresql.insert(table).on_conflict_do_nothing()

    async def insert_many_ignoring(self, session: AsyncSession, model: type[Base] | Table,
                                   rows: Sequence[dict[str, Any]], *, plain: bool = False
                                   ) -> int:
        """Bulk insert through the session's connection, skipping rows whose unique key
        exists: on PostgreSQL one statement per 5,000 rows (each column one array
        parameter, ``unnest``-ed), on SQLite the driver's executemany of one compiled
        statement (SQLite runs it in C; a round trip there is a function call).

        ``plain``: every value is already what the driver takes (int, str, None), so the
        rows go to the driver as they are, skipping SQLAlchemy's per-value conversion (it
        costs as much again as the insert at 10,000 rows a page).

        Returns how many rows were inserted (the others had a unique key taken).
        """
        if not rows:
            return 0
        connection = await session.connection()
        table = table_of(model)
        inserted = 0
        if not self.db.sqlite:
            keys = list(rows[0])
            if plain:
                # The rows as one JSON text parameter that PostgreSQL takes apart in C
                # (json_to_recordset): dumping one array per column went through the
                # driver's Python array dumper, a seventh of the service's CPU in a pull.
                sql = self._recordset_insert(table, keys)
                for part in chunks(rows, 10_000):
                    inserted += rowcount(await connection.exec_driver_sql(
                        sql, (orjson.dumps(list(part)).decode(),)))
                return inserted
            sql = self._unnest_insert(table, keys)
            for part in chunks(rows, 5_000):
                inserted += rowcount(await connection.exec_driver_sql(sql, tuple(
                    [_plain(row[key]) for row in part] for key in keys)))
            return inserted
        statement = self.insert_ignoring_duplicates(table)
        if plain:
            sql, order = self._plain_insert(statement, list(rows[0]), connection.dialect)
            assert order is not None  # SQLite's placeholders are positional
            values_of = _values_of(order)
        for part in chunks(rows, 5_000):
            if not plain:
                inserted += rowcount(await connection.execute(statement, list(part)))
            else:  # positional placeholders (SQLite's "?")
                inserted += rowcount(await connection.exec_driver_sql(
                    sql, list(map(values_of, part))))
        return inserted

    async def insert_many_new(self, session: AsyncSession, model: type[Base] | Table,
                              rows: Sequence[dict[str, Any]]) -> int:
        """Bulk insert of plain rows that are new but for a rare few (a fresh audience
        page); how many were inserted. PostgreSQL takes them by ``COPY`` under a
        savepoint: half the server's CPU of ``INSERT ... ON CONFLICT`` (30 against 58 ms
        for a 10,000-row page, the pull's largest cost on the server). A row whose unique
        key exists fails the ``COPY``; it is then undone to the savepoint and the rows go
        through ``insert_many_ignoring``, so the outcome is the same either way. SQLite:
        ``insert_many_ignoring``."""
        if self.db.sqlite or not rows:
            return await self.insert_many_ignoring(session, model, rows, plain=True)
        connection = await session.connection()
        table = table_of(model)
        keys = list(rows[0])
        values_of = _values_of(keys)
        try:
            async with connection.begin_nested():
                raw = await connection.get_raw_connection()
                driver = cast(AsyncConnection[Any], raw.driver_connection)
                copy_sql = f"COPY {table.name} ({', '.join(keys)}) FROM STDIN"
                async with driver.cursor() as cursor, cursor.copy(copy_sql) as copy:
                    for values in map(values_of, rows):
                        await copy.write_row(values)
        except UniqueViolation:
            return await self.insert_many_ignoring(session, model, rows, plain=True)
        return len(rows)

    def _unnest_insert(self, table: Table, keys: list[str]) -> str:
        """PostgreSQL: INSERT ... SELECT FROM unnest(one array per column) ON CONFLICT DO
        NOTHING, a set-based statement instead of one execution per row."""
        cache_key = (f"unnest:{table.name}", tuple(keys))
        found = self._compiled.get(cache_key)
        if found is None:
            dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
            arrays = ", ".join(f"%s::{table.c[key].type.compile(dialect=dialect)}[]"
                               for key in keys)
            sql = (f"INSERT INTO {table.name} ({', '.join(keys)}) "  # noqa: S608
                   f"SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING")
            found = self._compiled[cache_key] = (sql, None)
        return found[0]

    def _recordset_insert(self, table: Table, keys: list[str]) -> str:
        """PostgreSQL: INSERT ... SELECT FROM json_to_recordset(one JSON array of row
        objects) ON CONFLICT DO NOTHING."""
        cache_key = (f"recordset:{table.name}", tuple(keys))
        found = self._compiled.get(cache_key)
        if found is None:
            dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
            columns = ", ".join(f"{key} {table.c[key].type.compile(dialect=dialect)}"
                                for key in keys)
            names = ", ".join(keys)
            sql = (f"INSERT INTO {table.name} ({names}) SELECT {names} "  # noqa: S608
                   f"FROM json_to_recordset(%s::json) AS r({columns}) ON CONFLICT DO NOTHING")
            found = self._compiled[cache_key] = (sql, None)
        return found[0]

    def values_table(self, values: Sequence[str]) -> TableValuedAlias:
        """``values`` as a one-column table (column ``value``) bound as one parameter: lets
        SQL join a few thousand addresses without one placeholder each. One JSON text on
        either database: as an array, psycopg dumped it value by value in Python (2.5 % of
        the service's CPU in a PostgreSQL pull, for the page's address check alone)."""
        return self.json_values_table(orjson.dumps(list(values)).decode())

    def json_values_table(self, array: str) -> TableValuedAlias:
        """Like ``values_table``, from the values already encoded as one JSON array of
        strings (SQLite reads it as it is, with no Python object per value)."""
        if self.db.sqlite:
            return func.json_each(bindparam(None, array, type_=String)).table_valued("value")
        # PostgreSQL parses the text itself: no Python string per value, no array to adapt.
        return func.json_array_elements_text(sql_cast(bindparam(None, array, type_=String), JSON)
                                             ).table_valued("value").render_derived()

    def _plain_insert(self, statement: Insert, keys: list[str], dialect: Dialect
                      ) -> tuple[str, list[str] | None]:
        """The statement's SQL for these columns and its placeholders' order (None when
        they are named), compiled once: compiling costs more than a small insert."""
        cache_key = (str(statement.table), tuple(keys))
        found = self._compiled.get(cache_key)
        if found is None:
            compiled = statement.compile(dialect=dialect, column_keys=keys)
            found = self._compiled[cache_key] = (str(compiled), compiled.positiontup)
        return found

    def one_of(self, column: SQLColumnExpression[Any], values: Sequence[str]
               ) -> ColumnElement[bool]:
        """``column IN values`` with the values as one parameter, however many there are
        (no chunking under SQLite's variable limit, one statement to prepare)."""
        return column.in_(select(self.values_table(values).c.value))
