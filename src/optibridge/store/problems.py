"""Problems an operator should see, each kept once: a problem heard again is the same row,
with a count and the last time it was heard (so retries and repeats never grow the table).

Every part records problems through ``record_problem`` (or, for callbacks,
``record_callback_problem``); both go through ``upsert_problems``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from optibridge.store.base import StoreBase
from optibridge.store.db import Turn
from optibridge.store.schema import CallbackProblem, Problem

MAX_DETAIL = 2000


def problem_key(*parts: object) -> str:
    """What makes two problems the same one, as a short fixed-size key."""
    text = "\x1f".join("" if part is None else str(part) for part in parts)
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:40]


def clean_text(text: str) -> str:
    """A problem's text as any database stores it (PostgreSQL refuses NUL), cut short."""
    return text.replace("\x00", "\\x00")[:MAX_DETAIL]


@dataclass(frozen=True)
class ProblemRecord:
    tenant: str | None
    where: str
    message: str
    at: float  # the last time it was heard
    count: int = 1
    first_at: float | None = None


@dataclass(frozen=True)
class CallbackProblemRow:
    """One callback problem to record: ``times`` is how often it was heard just now."""

    kind: str
    send_id: int | None
    detail: str
    key: str | None = None
    times: int = 1


def upsert_problems(connection: Connection, sqlite_dialect: bool,
                    model: type[Problem] | type[CallbackProblem],
                    rows: Sequence[dict[str, Any]]) -> None:
    """Insert problem rows; a row whose key exists adds its count to that row and becomes
    its last time and text."""
    if not rows:
        return
    table = cast(Table, model.__table__)
    insert = (sqlite.insert(table) if sqlite_dialect else postgresql.insert(table))
    text_column = "message" if "message" in table.c else "detail"
    statement = insert.on_conflict_do_update(
        index_elements=["key"],
        set_={"count": table.c.count + insert.excluded.count,
              "last_at": insert.excluded.last_at,
              text_column: insert.excluded[text_column]})
    # One statement per row: the same key twice in one statement is an error on PostgreSQL.
    merged: dict[str, dict[str, Any]] = {}
    for row in rows:
        found = merged.get(row["key"])
        if found is None:
            merged[row["key"]] = dict(row)
        else:
            found["count"] += row["count"]
            found[text_column] = row[text_column]
    for row in merged.values():
        connection.execute(statement, row)


class ProblemStore(StoreBase):
    async def record_problem(self, tenant: str | None, where: str, message: str, *,
                             key: str | None = None) -> None:
        """Keep a problem for operators (``/ui``, ``/metrics``). The same (tenant, where,
        message), or the same ``key`` when given, is one row counted again."""
        now = self.clock()
        message = clean_text(message)
        row = {"tenant": tenant, "where": where[:64], "message": message, "at": now,
               "last_at": now, "count": 1,
               "key": problem_key("problem", tenant, where, key if key else message)}
        sqlite_dialect = self.db.sqlite

        def upsert(connection: Connection) -> None:
            upsert_problems(connection, sqlite_dialect, Problem, [row])
        await self.db.write_driver(upsert)

    async def record_callback_problem(self, kind: str, send_id: int | None, detail: str, *,
                                      key: str | None = None, turn: Turn = Turn.URGENT) -> None:
        """Keep a callback that could not be used (malformed, refused, unmappable)."""
        def add(connection: Connection) -> None:
            self.add_callback_problems(connection, [CallbackProblemRow(kind, send_id, detail,
                                                                       key)])
        await self.db.write_driver(add, turn=turn)

    def add_callback_problems(self, connection: Connection,
                              problems: Sequence[CallbackProblemRow]) -> None:
        """Record callback problems inside the caller's transaction (``write_driver``)."""
        now = self.clock()
        rows = [{"kind": p.kind, "send_id": p.send_id, "detail": clean_text(p.detail),
                 "received_at": now, "last_at": now, "count": p.times,
                 "key": problem_key("callback", p.kind, p.send_id,
                                    p.key if p.key else clean_text(p.detail))}
                for p in problems]
        upsert_problems(connection, self.db.sqlite, CallbackProblem, rows)

    async def recent_problems(self, limit: int = 20) -> list[ProblemRecord]:
        """The problems heard most recently, newest first."""
        async with self.db.read() as session:
            rows = await session.scalars(
                select(Problem).order_by(Problem.last_at.desc(), Problem.id.desc())
                .limit(limit))
            return [ProblemRecord(r.tenant, r.where, r.message, r.last_at or r.at, r.count,
                                  r.at) for r in rows]
