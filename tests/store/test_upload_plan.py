"""The upload's chunk read walks the primary key on SQLite instead of sorting the send."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy.dialects import sqlite as sqlite_dialect

from optibridge.store.campaigns import upload_chunk
from optibridge.store.migrate import upgrade


def test_an_upload_chunk_walks_the_primary_key_on_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "plan.db"
    upgrade(f"sqlite:///{path}")
    statement = upload_chunk(7, 120_000, 10_000, sqlite=True)
    sql = str(statement.compile(dialect=sqlite_dialect.dialect(),
                                compile_kwargs={"literal_binds": True}))
    with sqlite3.connect(path) as db:
        plan = " | ".join(row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}"))
    assert "INTEGER PRIMARY KEY (rowid>?)" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # no read and sort of the whole send
