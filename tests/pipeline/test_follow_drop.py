"""Dropped only when nothing can still prove sending (SQLite and PostgreSQL): the drop and
the check that no callback of the send waits to be mapped are one transaction, and the quiet
period grows with the callback lag the service observes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from optibridge.domain import Event, InboxItem, SendRecord, SendState
from optibridge.pipeline.follow import follow_send
from optibridge.platform.api import CampaignState
from optibridge.store import Store, open_store
from optibridge.store.callbacks import CallbackStore
from tests.pipeline.test_follow_unit import Ctx, ScriptedPlatform, ready_send

DUE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()


async def _done_send(store: Store, ctx: Any) -> SendRecord:
    """A READY send that the platform has reported DONE (its quiet period starts)."""
    send = await ready_send(store)
    assert not await follow_send(ctx, send)
    fresh = await store.get_send(send.id)
    assert fresh is not None and fresh.finished_at is not None
    return fresh


async def test_the_main_mapper_taking_a_callback_mid_finish_drops_no_sent_customer(
        database_url: str, monkeypatch: Any) -> None:
    store = await open_store(database_url)
    now = [DUE + 3600]
    store.clock = lambda: now[0]
    ctx: Any = Ctx(store, ScriptedPlatform(CampaignState.DONE))
    send = await _done_send(store, ctx)
    # Two callbacks proving the sending to C0 and C1, arriving before DONE was seen.
    await store.record_callbacks([
        InboxItem(send.id, Event.SUBMITTED, int(DUE), ("c0@example.com",)),
        InboxItem(send.id, Event.SUBMITTED, int(DUE), ("c1@example.com",))])
    original = CallbackStore._map_all
    calls = []

    async def interleaved(self: Store, items: Any, *rest: Any) -> None:
        calls.append(len(items))
        if len(calls) == 1 and len(items) == 2:
            # Between the finish step's read and its write, the main mapper maps one of
            # the two callbacks (its limit took only that one).
            await self.process_inbox(limit=1)
        await original(self, items, *rest)

    monkeypatch.setattr(CallbackStore, "_map_all", interleaved)
    now[0] += 10_000  # long quiet
    for _ in range(3):
        if await follow_send(ctx, send):
            break
    monkeypatch.undo()
    while await store.process_inbox():
        pass
    counts = await store.event_counts("t")
    assert counts["submitted"] == (2, 0)
    assert counts["dropped"] == (1, 0), counts  # C2 only: C0 and C1 were sent
    assert "late" not in await store.problem_counts()
    await store.db.dispose()


async def test_a_waiting_callback_holds_the_drop(database_url: str) -> None:
    store = await open_store(database_url)
    now = [DUE + 3600]
    store.clock = lambda: now[0]
    send = await ready_send(store)
    await store.record_callbacks([InboxItem(send.id, Event.SUBMITTED, int(DUE),
                                            ("c0@example.com",))])
    assert await store.drop_unsent_when_mapped(send, [Event.SUBMITTED]) is None
    assert "dropped" not in await store.event_counts("t")
    await store.process_inbox()
    assert await store.drop_unsent_when_mapped(send, [Event.SUBMITTED]) == 2
    await store.db.dispose()


async def test_a_platform_running_late_delays_dropped(database_url: str) -> None:
    store = await open_store(database_url)
    now = [DUE + 3600]
    store.clock = lambda: now[0]
    ctx: Any = Ctx(store, ScriptedPlatform(CampaignState.DONE))  # window 10 + margin 5
    send = await _done_send(store, ctx)
    # The platform's callbacks arrive 100 s after their events: a lagging platform.
    await store.record_callbacks([InboxItem(send.id, Event.SUBMITTED, int(now[0] - 100),
                                            ("c0@example.com",))])
    now[0] += 16  # window + margin passed; the lag says more may still come
    assert not await follow_send(ctx, send)
    assert "dropped" not in await store.event_counts("t")
    now[0] += 200  # quiet for window + margin + twice the lag
    assert await follow_send(ctx, send)
    assert (await store.event_counts("t"))["dropped"] == (2, 0)
    final = await store.get_send(send.id)
    assert final is not None and final.state == SendState.DONE
    await store.db.dispose()
