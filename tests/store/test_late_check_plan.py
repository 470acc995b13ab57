"""PostgreSQL: mapping's late check (a sent event for a customer already reported Dropped)
reads the send's Dropped from their own index. It went through each heard customer's
interactions of every send (ix_interaction_customer, a table row read for each): most of the
time after the last send READY of the 1,000,000-customer campaign. (SQLite looks each
customer up in the interaction's unique index, as good a probe there.)"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import event

from optibridge.domain import AudienceEntry, Event, InboxItem, SendState
from optibridge.store import open_store

T0 = dt.datetime(2026, 11, 20, 10, 0, 0)


@pytest.mark.postgres
async def test_the_late_check_reads_the_sends_dropped_from_their_index(
        postgres_url: str) -> None:
    store = await open_store(postgres_url)
    try:
        campaign, _ = await store.open_campaign("t", 1, 504)
        entries = [AudienceEntry(f"C{i}", 1, T0, f"c{i}@example.com") for i in range(3_000)]
        await store.store_audience_page(campaign.id, "email", 0, entries, last_page=True)
        send = (await store.sends("t", list(SendState)))[0]
        await store.record_callbacks([InboxItem(send.id, Event.SUBMITTED, 1_790_000_000,
                                                ("c1@example.com", "c2@example.com"))])
        seen: list[tuple[str, Any]] = []

        def keep(_conn: object, _cursor: object, statement: str, parameters: Any,
                 _context: object, _many: bool) -> None:
            if "EXISTS" in statement and "interaction.event" in statement:
                seen.append((statement, parameters))

        engine = store.db.write_engine.sync_engine
        event.listen(engine, "before_cursor_execute", keep)
        try:
            assert await store.process_inbox()
        finally:
            event.remove(engine, "before_cursor_execute", keep)
        assert seen, "mapping a submitted event ran no late check"
        for statement, parameters in seen:
            async with store.db.read() as session:
                connection = await session.connection()
                plan = " | ".join(str(row[0]) for row in await connection.exec_driver_sql(
                    "EXPLAIN " + statement, parameters))
            assert "ix_interaction_dropped" in plan, plan
    finally:
        await store.db.dispose()
