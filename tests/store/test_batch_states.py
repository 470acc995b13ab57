"""Report batch states: the migration of old 'failed' batches, lease epochs fencing a
stale holder's writes, the operator's actions and the API key's window in the database."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import create_engine, text

from optibridge.domain import BatchState, Event, InboxItem, LeaseClaim, SendState
from optibridge.store import Database, Store, open_store
from optibridge.store.db import normalize_url
from optibridge.store.leases import LeaseLost
from optibridge.store.migrate import upgrade
from tests.store.test_store import entry, pulled_campaign


async def batches_of(store: Store, count: int) -> list[int]:
    """``count`` pending report batches of one customer each."""
    await pulled_campaign(store, [entry(i) for i in range(count)])
    send = (await store.sends("t", list(SendState)))[0]
    when = int(dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC).timestamp())
    addresses = tuple(f"c{i}@example.com" for i in range(count))
    await store.record_callbacks([InboxItem(send.id, Event.OPENED, when, addresses)])
    await store.process_inbox()
    await store.form_report_batches("t", ready_before=store.clock() + 1, max_size=1)
    return [b.id for b in await store.batches("t", [BatchState.PENDING])]


def test_failed_batches_of_old_versions_are_sent_again_or_dead_letters(
        database_url: str) -> None:
    upgrade(database_url, "0003")
    engine = create_engine(normalize_url(database_url)[1])
    refusals = {1: "Optimove UpdateCampaignInteractions: rejected with 401: bad key",
                2: "Optimove UpdateCampaignInteractions: rejected with 404: <html>",
                3: "Optimove UpdateCampaignInteractions: rejected with 400: CampaignID",
                4: "empty report batch", 5: None}
    with engine.begin() as connection:
        for batch_id, error in refusals.items():
            connection.execute(text(
                "INSERT INTO report_batch (id, tenant, campaign_id, channel_id, template_id,"
                " event_id, recipient_group_id, interaction_date, size, state, attempts,"
                " created_at, updated_at, last_error) VALUES (:id, 't', 1, 504, 1, 2, 1,"
                " '2026-11-20', 1, :state, 1, 0, 0, :error)"),
                {"id": batch_id, "state": "sent" if error is None else "failed",
                 "error": error})
    upgrade(database_url)
    with engine.connect() as connection:
        rows: dict[int, str] = dict(
            connection.execute(text("SELECT id, state FROM report_batch")).all())
        answer = connection.execute(text("SELECT answer FROM report_batch WHERE id = 3"))
        kept = answer.scalar()
    engine.dispose()
    assert rows == {1: "pending", 2: "pending", 3: "dead_letter", 4: "dead_letter",
                    5: "sent"}
    assert kept is not None and "rejected with 400" in kept


async def test_a_stale_lease_holder_cannot_change_a_batch(database_url: str) -> None:
    store = await open_store(database_url)
    first, second = await batches_of(store, 2)
    old = await store.acquire_lease("t", "a", ttl=0.5)
    assert await store.mark_batch(first, BatchState.SENDING, expect=BatchState.PENDING,
                                  epoch=old.epoch)
    await asyncio.sleep(0.6)
    new = await store.acquire_lease("t", "b", ttl=10)
    assert new.epoch == old.epoch + 1
    assert await store.doubt_interrupted_batches("t", new.epoch) == 1
    # The paused holder comes back with its answer: refused, whatever the state.
    with pytest.raises(LeaseLost):
        await store.mark_batch(first, BatchState.SENT, expect=BatchState.SENDING,
                               epoch=old.epoch)
    with pytest.raises(LeaseLost):
        await store.mark_batch(second, BatchState.SENDING, expect=BatchState.PENDING,
                               epoch=old.epoch)
    with pytest.raises(LeaseLost):
        await store.settle_in_doubt([first], True, kind="read_back", actor="a",
                                    epoch=old.epoch)
    assert await store.doubt_interrupted_batches("t", old.epoch) == 0
    states = {b.id: b.state for b in await store.batches("t", list(BatchState))}
    assert states == {first: BatchState.IN_DOUBT, second: BatchState.PENDING}
    # The current holder's writes go through.
    assert await store.settle_in_doubt([first], False, kind="read_back", actor="b",
                                       epoch=new.epoch) == [first]
    await store.db.dispose()


async def test_operator_actions_are_logged_with_who_and_when(database_url: str) -> None:
    store = await open_store(database_url)
    first, second = await batches_of(store, 2)
    await store.mark_batch(first, BatchState.SENDING)
    assert await store.mark_batch(first, BatchState.DEAD_LETTER, expect=BatchState.SENDING,
                                  error="rejected with 400", answer='{"error":"CampaignID"}',
                                  event="call", actor="host:1")
    await store.mark_batch(second, BatchState.IN_DOUBT)
    assert await store.requeue_dead_letters([first, second], actor="ops@box") == [first]
    assert await store.settle_in_doubt([second, first], True, kind="resolve",
                                       actor="ops@box", detail="seen in Optimove") == [second]
    shown = await store.batch_detail(first)
    assert shown is not None and shown.batch.state == BatchState.PENDING
    assert shown.answer == '{"error":"CampaignID"}'
    assert [(e.kind, e.actor, e.state) for e in shown.events] == [
        ("call", "host:1", "dead_letter"), ("requeue", "ops@box", "pending")]
    resolved = await store.batch_detail(second)
    assert resolved is not None and resolved.batch.state == BatchState.SENT
    assert [(e.kind, e.actor, e.detail) for e in resolved.events] == [
        ("resolve", "ops@box", "seen in Optimove")]
    assert resolved.events[0].at > 0
    await store.db.dispose()


async def test_every_process_of_a_key_counts_one_window(database_url: str) -> None:
    store = await open_store(database_url)
    other = Store(Database(database_url))  # another process, as far as the window knows
    first = await store.reserve_call("k", 2, 0.5)
    second = await other.reserve_call("k", 2, 0.5)
    assert first.call_id is not None and second.call_id is not None
    full = await store.reserve_call("k", 2, 0.5)
    assert full.call_id is None and full.wait > 0
    assert (await other.reserve_call("another key", 2, 0.5)).call_id is not None
    await store.end_call(first.call_id)
    await other.end_call(second.call_id)
    assert (await other.reserve_call("k", 2, 0.5)).call_id is None  # ended, still counted
    await asyncio.sleep(0.6)
    assert (await other.reserve_call("k", 2, 0.5)).call_id is not None
    # A call that never ended counts until its timeout is over.
    assert (await store.reserve_call("u", 1, 0.2, unended_for=0.3)).call_id is not None
    assert (await store.reserve_call("u", 1, 0.2, unended_for=0.3)).call_id is None
    await asyncio.sleep(0.6)
    assert (await store.reserve_call("u", 1, 0.2, unended_for=0.3)).call_id is not None
    await other.db.dispose()
    await store.db.dispose()


async def test_no_call_is_counted_under_a_lapsed_lease(database_url: str) -> None:
    store = await open_store(database_url)
    grant = await store.acquire_lease("t", "a", ttl=0.6)
    claim = LeaseClaim("t", "a", grant.epoch)
    held = await store.reserve_call("k", 5, 1.0, claim, min_lease_left=0.2)
    assert held.call_id is not None and 0.2 < held.lease_left <= 0.6
    await asyncio.sleep(0.5)
    refused = await store.reserve_call("k", 5, 1.0, claim, min_lease_left=0.2)
    assert refused.call_id is None and refused.lease_left < 0.2
    wrong_epoch = LeaseClaim("t", "a", grant.epoch + 1)
    assert (await store.reserve_call("k", 5, 1.0, wrong_epoch)).call_id is None
    assert await store.calls_in_window("k", 1.0) == 1
    await store.db.dispose()
