"""Interactions per send and event are counted by the database as they are stored (each
stored once, repeats not counted), folded on PostgreSQL, and counted from what is stored
when the migration first runs; metric totals and funnels read them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import create_engine, text

from optibridge.domain import Event, InboxItem, SendState
from optibridge.store import Store, open_store
from optibridge.store.db import normalize_url
from optibridge.store.migrate import upgrade
from tests.store.test_store import entry, pulled_campaign

WHEN = int(dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC).timestamp())


def _recount(url: str) -> dict[int, dict[str, int]]:
    engine = create_engine(normalize_url(url)[1])
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT send_id, event, count(*) FROM interaction GROUP BY send_id, event"))
            counts: dict[int, dict[str, int]] = {}
            for send_id, event, n in rows:
                counts.setdefault(send_id, {})[event] = n
            return counts
    finally:
        engine.dispose()


async def _callbacks(store: Store, send_id: int, event: Event, customers: range) -> None:
    addresses = tuple(f"c{i}@example.com" for i in customers)
    await store.record_callbacks([InboxItem(send_id, event, WHEN, addresses)])
    while await store.process_inbox():
        pass


async def test_counts_follow_what_is_stored_once(database_url: str) -> None:
    store = await open_store(database_url)
    try:
        # 10 customers, 2 without an address: Dropped as the page is stored.
        await pulled_campaign(store, [entry(i, address=None if i < 2 else "x")
                                      for i in range(10)])
        send = (await store.sends("t", list(SendState)))[0]
        await _callbacks(store, send.id, Event.DELIVERED, range(2, 10))
        await _callbacks(store, send.id, Event.OPENED, range(2, 6))
        await _callbacks(store, send.id, Event.OPENED, range(4, 8))  # 4 and 5 again
        await store.drop_unsent(send, [Event.DELIVERED])  # nobody: all were delivered
        expected = {"dropped": 2, "delivered": 8, "opened": 6}
        assert (await store.interaction_counts([send.id]))[send.id] == expected
        await store.fold_interaction_counts()
        assert (await store.interaction_counts([send.id]))[send.id] == expected
        assert _recount(database_url) == {send.id: expected}
        await _callbacks(store, send.id, Event.CLICKED, range(2, 5))
        await _callbacks(store, send.id, Event.CLICKED, range(2, 5))
        assert (await store.interaction_counts([send.id]))[send.id]["clicked"] == 3
        funnel = (await store.campaign_summaries("t"))[0].sends[0]
        assert dict(funnel.counts) == {**expected, "clicked": 3}
        totals = await store.metric_totals("t", since=0)
        assert sorted(totals.values()) == sorted([2, 8, 6, 3])
    finally:
        await store.db.dispose()


async def test_the_migration_counts_what_is_stored_already(database_url: str) -> None:
    upgrade(database_url, "0010")
    engine = create_engine(normalize_url(database_url)[1])
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO campaign (id, tenant, campaign_id, channel_id, triggered, state,"
            " next_skip, pulled, created_at) VALUES (1, 't', 7, 504, false, 'pulled', 0, 0, 0)"))
        connection.execute(text(
            "INSERT INTO send (id, campaign_pk, template_id, scheduled_time, channel_type,"
            " state, recipients, uploaded_through, created_at) VALUES"
            " (1, 1, 1, '2026-11-20 10:00:00', 'email', 'ready', 3, 0, 0)"))
        for i, event in enumerate(["opened", "opened", "delivered"]):
            connection.execute(text(
                "INSERT INTO interaction (send_id, customer_id, event, day, created_at)"
                " VALUES (1, :c, :e, '2026-11-20', 0)"), {"c": f"C{i}", "e": event})
    engine.dispose()
    store = await open_store(database_url)
    try:
        assert await store.interaction_counts([1]) == {1: {"opened": 2, "delivered": 1}}
    finally:
        await store.db.dispose()
