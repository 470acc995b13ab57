"""The report backlog (``/metrics``, ``/ui``, a demo's progress) counts what batches in
flight hold by the batch index alone, on PostgreSQL.

Its count of a tenant's batches not yet sent named the reported events as a condition,
which ix_interaction_customer's own predicate proves: with statistics older than the
table (autovacuum off, or behind on a busy server), PostgreSQL read that whole index
beside each batch's entries. 1.4 s a call with two batches sending, at 20,000,000
interactions in a 10,000,000-customer campaign (``EXPLAIN ANALYZE``), and the status
pages and the demo's progress call it every time.
"""

from __future__ import annotations

import datetime as dt

import pytest

from optibridge.domain import AudienceEntry, Event, InboxItem, SendState
from optibridge.store import open_store
from tests.store.plans import plan_of, statements_run

T0 = dt.datetime(2026, 11, 20, 10, 0, 0)


@pytest.mark.postgres
async def test_the_backlog_in_flight_batches_is_read_by_the_batch_index(
        postgres_url: str) -> None:
    store = await open_store(postgres_url)
    try:
        campaign, _ = await store.open_campaign("t", 1, 504)
        entries = [AudienceEntry(f"C{i:05d}", 1, T0, f"c{i}@example.com")
                   for i in range(6_000)]
        await store.store_audience_page(campaign.id, "email", 0, entries, last_page=True)
        [send] = await store.sends("t", list(SendState))
        for heard in (Event.OPENED, Event.CLICKED):
            await store.record_callbacks([InboxItem(send.id, heard, 1_790_000_000, tuple(
                e.address for e in entries if e.address))])
        await store.process_inbox()
        assert await store.form_report_batches("t", float("inf"), 2_000, limit=1) == 1
        with statements_run([store.db.read_engine.sync_engine],
                            lambda statement: "JOIN report_batch" in statement) as seen:
            backlog = await store.report_backlog("t")
        assert backlog.count == 12_000  # 2,000 in the batch, 10,000 in none
        assert seen, "the backlog read no batch"
        for statement in seen:
            plan = " | ".join(await plan_of(store, statement))
            assert "ix_interaction_customer" not in plan, plan
    finally:
        await store.db.dispose()
