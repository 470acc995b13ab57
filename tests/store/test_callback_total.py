"""Callbacks received (and the events they carried) are kept by the database as inbox rows
are stored, folded on PostgreSQL, counted from what is stored when the migration first
runs, and not lowered when the inbox is pruned: ``/metrics`` reads them, never the inbox."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from optibridge.domain import Event, InboxItem
from optibridge.store import open_store
from optibridge.store.db import normalize_url
from optibridge.store.migrate import upgrade

WHEN = 1_790_000_000


def _rows(url: str) -> int:
    engine = create_engine(normalize_url(url)[1])
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM callback_total")).scalar_one())
    finally:
        engine.dispose()


async def test_callbacks_received_kept_as_stored_and_not_lowered_by_pruning(
        database_url: str) -> None:
    clock = [1_000.0]
    store = await open_store(database_url)
    store.clock = lambda: clock[0]
    try:
        assert await store.callbacks_received() == (0, 0)
        await store.record_callbacks([InboxItem(7, Event.OPENED, WHEN, ("a@x", "b@x")),
                                      InboxItem(7, Event.DELIVERED, WHEN, ("a@x",))])
        await store.record_callbacks([InboxItem(8, Event.OPENED, WHEN, ("c@x",) * 3)])
        assert await store.callbacks_received() == (3, 6)
        await store.fold_callback_total()
        assert _rows(database_url) == 1  # PostgreSQL's appended rows folded into the total
        assert await store.callbacks_received() == (3, 6)
        while await store.process_inbox():  # sends 7 and 8 are unknown: kept as problems
            pass
        clock[0] += 10 * 86_400
        pruned = await store.prune(before=clock[0] - 86_400)
        assert pruned.counts["callback_inbox"] == 3
        assert await store.callbacks_received() == (3, 6)
        await store.record_callbacks([InboxItem(7, Event.CLICKED, WHEN, ("a@x",))])
        assert await store.callbacks_received() == (4, 7)
    finally:
        await store.db.dispose()


async def test_the_migration_counts_the_inbox_stored_already(database_url: str) -> None:
    upgrade(database_url, "0013")
    engine = create_engine(normalize_url(database_url)[1])
    with engine.begin() as connection:
        for n in (2, 5):
            connection.execute(text(
                "INSERT INTO callback_inbox (send_id, event, event_time, addresses, count,"
                " received_at, attempts) VALUES (1, 'opened', 0, '[]', :n, 0, 0)"), {"n": n})
    engine.dispose()
    store = await open_store(database_url)
    try:
        assert await store.callbacks_received() == (2, 7)
    finally:
        await store.db.dispose()
