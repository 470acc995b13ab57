"""Mapping's late check reads only the recipients it needs, never every recipient of the
send. Asked for the late customers in customer order,
SQLite walked every recipient of the send in uq_recipient_identity instead: 65 ms for each
sent event's mapping of a send of 200,000, which held the one write connection the
callbacks' answers wait for. (PostgreSQL starts from the send's Dropped, none here, and
reads recipients by customer.)"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import event

from optibridge.domain import AudienceEntry, Event, InboxItem, SendState
from optibridge.store import Store, open_store

T0 = dt.datetime(2026, 11, 20, 10, 0, 0)


async def _recipient_reads(store: Store, statement: str, parameters: Any) -> list[str]:
    """How the statement's plan reads the recipient table: one line for each read, with
    its index condition."""
    explain = "EXPLAIN QUERY PLAN " if store.db.sqlite else "EXPLAIN "
    async with store.db.read() as session:
        connection = await session.connection()
        lines = [str(row[-1]).strip() for row in
                 await connection.exec_driver_sql(explain + statement, parameters)]
    if store.db.sqlite:  # SEARCH recipient USING INDEX name (send_id=? AND address=?)
        return [line for line in lines if line.startswith("SEARCH recipient")
                or line.startswith("SCAN recipient")]
    return [f"{line} {after}" for line, after in zip(lines, [*lines[1:], ""], strict=True)
            if re.search(r" on recipient\b", line)]  # the next line is its Index Cond


async def test_the_late_check_looks_the_heard_addresses_up(database_url: str) -> None:
    store = await open_store(database_url)
    try:
        campaign, _ = await store.open_campaign("t", 1, 504)
        entries = [AudienceEntry(f"C{i:05d}", 1, T0, f"c{i}@example.com")
                   for i in range(20_000)]
        await store.store_audience_page(campaign.id, "email", 0, entries, last_page=True)
        send = (await store.sends("t", list(SendState)))[0]
        await store.record_callbacks([InboxItem(send.id, Event.DELIVERED, 1_790_000_000,
                                                ("c1@example.com", "c2@example.com"))])
        seen: list[tuple[str, Any]] = []

        def keep(_conn: object, _cursor: object, statement: str, parameters: Any,
                 _context: object, _many: bool) -> None:
            if statement.lstrip().startswith("SELECT recipient.customer_id"):
                seen.append((statement, parameters))

        for engine in store.db.write_engines:
            event.listen(engine, "before_cursor_execute", keep)
        try:
            assert await store.process_inbox()
        finally:
            for engine in store.db.write_engines:
                event.remove(engine, "before_cursor_execute", keep)
        assert seen, "mapping a delivered event ran no late check"
        for statement, parameters in seen:
            reads = await _recipient_reads(store, statement, parameters)
            assert reads, statement
            for read in reads:  # by send and address, or by send and customer
                assert "send_id" in read and " AND " in read, read
    finally:
        await store.db.dispose()
