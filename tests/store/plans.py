"""What a store call ran, and how the database plans it: for the tests that hold a hot
statement to its index."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event

from optibridge.store import Store

Statement = tuple[str, Any]  # the SQL as sent, and its parameters


@contextmanager
def statements_run(engines: Iterable[Engine], wanted: Callable[[str], bool]
                   ) -> Iterator[list[Statement]]:
    """The ``wanted`` statements the engines run inside the block, as they run."""
    seen: list[Statement] = []
    engines = list(engines)

    def keep(_conn: object, _cursor: object, statement: str, parameters: Any,
             _context: object, _many: bool) -> None:
        if wanted(statement):
            seen.append((statement, parameters))

    for engine in engines:
        event.listen(engine, "before_cursor_execute", keep)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", keep)


async def plan_of(store: Store, statement: Statement) -> list[str]:
    """The database's plan of a statement, a line per step."""
    explain = "EXPLAIN QUERY PLAN " if store.db.sqlite else "EXPLAIN "
    async with store.db.read() as session:
        connection = await session.connection()
        return [str(row[-1]).strip() for row in
                await connection.exec_driver_sql(explain + statement[0], statement[1])]
