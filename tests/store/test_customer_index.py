"""The customer index holds only the reported events, and a read-back's probe still looks
a batch's customers up in it. Every submitted and delivered interaction was in it too: at
millions of rows a random insert each, about a third of an interaction's insert cost."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import text

from optibridge.domain import BatchState
from optibridge.store import Store, open_store
from tests.store.plans import statements_run
from tests.store.test_batch_forming import _stored

INDEX = "ix_interaction_customer"


async def _definition(store: Store) -> str:
    query = ("SELECT sql FROM sqlite_master WHERE name = :name" if store.db.sqlite else
             "SELECT indexdef FROM pg_indexes WHERE indexname = :name")
    async with store.db.read() as session:
        return str(await session.scalar(text(query), {"name": INDEX}))


def _literal(value: object) -> str:
    return str(value) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"


async def _plan(store: Store, statement: str, parameters: Any) -> str:
    async with store.db.read() as session:
        connection = await session.connection()
        if store.db.sqlite:
            rows = await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                    parameters)
            return " | ".join(str(row[-1]) for row in rows)
        # The plan PostgreSQL keeps for a prepared statement after its first runs is
        # generic: a parameter there cannot tell it that the event is a reported one. A
        # small table is read whole whatever its indexes, hence no sequential scan.
        await connection.exec_driver_sql("ANALYZE interaction")
        await connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        await connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        names = re.findall(r"%\((\w+)\)s", statement)
        numbers = iter(range(1, len(names) + 1))
        prepared = re.sub(r"%\((\w+)\)s", lambda _: f"${next(numbers)}", statement)
        await connection.exec_driver_sql(f"PREPARE probe AS {prepared}")
        values = ", ".join(_literal(parameters[name]) for name in names)
        rows = await connection.exec_driver_sql(f"EXPLAIN EXECUTE probe({values})")
        return " | ".join(str(row[0]) for row in rows)


async def test_only_reported_events_are_in_the_customer_index(database_url: str) -> None:
    store = await open_store(database_url)
    try:
        definition = await _definition(store)
    finally:
        await store.db.dispose()
    assert "WHERE" in definition.upper() and "opened" in definition, definition
    assert "delivered" not in definition and "submitted" not in definition, definition


async def test_a_probe_looks_the_batchs_customers_up_in_the_customer_index(
        database_url: str) -> None:
    store = await open_store(database_url)
    try:
        await _stored(store, 3_000)
        assert await store.form_report_batches("t", store.clock() + 1, max_size=1_000) == 3
        batch = (await store.batches("t", [BatchState.PENDING]))[0]
        with statements_run([store.db.read_engine.sync_engine],
                            lambda sql: "interaction.customer_id IN" in sql) as seen:
            assert len(await store.clear_customers(batch, 3)) == 3
        assert seen, "the probe ran no lookup by customer"
        plans = [await _plan(store, statement, parameters) for statement, parameters in seen]
    finally:
        await store.db.dispose()
    for plan in plans:
        if database_url.startswith("sqlite"):
            # SQLite probes the unique index (send_id, customer_id, ...), as good a lookup.
            assert "SEARCH interaction" in plan and "customer_id=?" in plan, plan
        else:
            assert INDEX in plan, plan
