"""The status queries on SQLite and PostgreSQL: funnels, backlog, batch states, errors."""

from __future__ import annotations

import datetime as dt

from optibridge.config import parse_config
from optibridge.domain import AudienceEntry, BatchState, Event, InboxItem
from optibridge.store import Store, open_store
from tests import progress_check

WHEN = dt.datetime(2030, 5, 1, 12, 0)


def entry(i: int, template: int, address: str | None) -> AudienceEntry:
    return AudienceEntry(f"C{i}", template, WHEN, address)


async def assert_progress_agrees(store: Store) -> None:
    tenant = parse_config({
        "server": {"public_url": "http://127.0.0.1:9", "signing_secret": "s" * 16},
        "tenants": {"acme": {
            "optimove_url": "http://127.0.0.1:9", "api_key": "k",
            "channels": {"504": {"type": "email", "address_attribute": "Email"}},
            "platform": {"base_url": "http://127.0.0.1:9", "api_key": "p",
                         "bounce_domain": 1}}}}).tenant("acme")
    await progress_check.assert_progress_agrees(store, "acme", tenant)


async def test_funnel_backlog_batches_and_errors(database_url: str) -> None:
    store: Store = await open_store(database_url)
    try:
        campaign, _ = await store.open_campaign("acme", 7, 504)
        entries = [entry(i, 1 + i % 2, None if i < 2 else f"c{i}@x.test") for i in range(10)]
        assert await store.store_audience_page(campaign.id, "email", 0, entries, True)
        sends = await store.open_sends("acme")
        first = sends[0]
        await store.record_callbacks([InboxItem(first.id, Event.OPENED, int(WHEN.timestamp()),
                                                ("c2@x.test", "c4@x.test"))])
        await store.process_inbox()

        [summary] = await store.campaign_summaries("acme")
        assert summary.campaign_id == 7 and summary.pulled == 10
        assert summary.recipients == 10 and summary.total("dropped") == 2
        by_id = {s.id: s for s in summary.sends}
        assert by_id[first.id].count("opened") == 2 and by_id[first.id].recipients == 5

        # 2 dropped + 2 opened wait to be reported; the index-based backlog agrees with
        # the pipeline's own query before batching, while pending and once sent.
        for _ in range(2):
            backlog = await store.report_backlog("acme")
            assert (backlog.count, backlog.oldest) == await store.unreported_backlog("acme")
            assert backlog.count == 4 and backlog.age(backlog.oldest or 0) == 0
            await assert_progress_agrees(store)
            await store.form_report_batches("acme", ready_before=float("inf"))
        batches = await store.batches("acme", [BatchState.PENDING])
        assert len(batches) == 3  # dropped on each of the two sends, opened on one
        counts = await store.batch_state_counts(summary)
        assert counts == {("acme", "pending"): 3}
        await store.mark_batch(batches[0].id, BatchState.SENT)
        await store.mark_batch(batches[1].id, BatchState.DEAD_LETTER,
                               error="400: bad CustomerIDs")
        left = await store.report_backlog("acme")
        assert (left.count, left.oldest) == await store.unreported_backlog("acme")
        assert left.count == 4 - batches[0].size
        await assert_progress_agrees(store)
        assert await store.batch_state_counts() == {
            ("acme", "sent"): 1, ("acme", "dead_letter"): 1, ("acme", "pending"): 1}
        # An expired batch (too old for saveEvent) is never sent: no backlog either.
        await store.mark_batch(batches[2].id, BatchState.EXPIRED)
        gone = await store.report_backlog("acme")
        assert (gone.count, gone.oldest) == await store.unreported_backlog("acme")
        assert gone.count == 4 - batches[0].size - batches[2].size
        await assert_progress_agrees(store)

        await store.record_problem("acme", "pull", "OptimoveUnavailable: no connection")
        await store.record_callback_problem("malformed", first.id, "bad JSON")
        errors = await store.recent_errors()
        wheres = {e.where for e in errors}
        assert "pull" in wheres and any(w.startswith("report batch") for w in wheres)
        assert any(w.startswith("callback malformed") for w in wheres)
        assert await store.notification_counts() == {}
        assert await store.recipients_pulled() == {"acme": 10}
        assert await store.callbacks_received() == (1, 2)
    finally:
        await store.db.dispose()


async def test_progress_counts_a_campaign_still_being_pulled(database_url: str) -> None:
    """Its Dropped (customers without an address) are stored, batched and may be sent
    while later pages are still to come."""
    store: Store = await open_store(database_url)
    try:
        campaign, _ = await store.open_campaign("acme", 7, 504)
        entries = [entry(i, 1, None if i < 3 else f"c{i}@x.test") for i in range(10)]
        assert await store.store_audience_page(campaign.id, "email", 0, entries, False)
        await store.form_report_batches("acme", ready_before=float("inf"))
        [batch] = await store.batches("acme", [BatchState.PENDING])
        await store.mark_batch(batch.id, BatchState.SENT)
        await assert_progress_agrees(store)
    finally:
        await store.db.dispose()
