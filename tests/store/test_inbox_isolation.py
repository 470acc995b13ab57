"""One stored callback that cannot be mapped never stops the others (SQLite and PostgreSQL),
mapping is per tenant, and a problem heard again is one row with a count."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Connection, select

from optibridge.domain import Event, InboxItem, SendState
from optibridge.store import Store, open_store
from optibridge.store.callbacks import CallbackStore
from optibridge.store.schema import CallbackInbox, CallbackProblem, Problem
from tests.store.test_store import entry, pulled_campaign

NOON = int(dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC).timestamp())


async def _map_until_done(store: Store, now: list[float]) -> None:
    """Map passes, with the clock moved past every retry pause (bounded)."""
    for _ in range(12):
        await store.process_inbox()
        now[0] += 1_000.0
        if not await store.inbox_backlog():
            return
    raise AssertionError("the inbox never emptied")


async def test_poisoned_rows_are_set_aside_and_the_healthy_ones_mapped(database_url: str
                                                                     ) -> None:
    store = await open_store(database_url)
    now = [float(NOON + 60)]
    store.clock = lambda: now[0]
    await pulled_campaign(store, [entry(i) for i in range(4)])
    send = (await store.sends("t", list(SendState)))[0]
    # Stored before the door refused them (or by an older version): the mapper must cope.
    await store.record_callbacks([
        InboxItem(send.id, Event.OPENED, NOON, ("c0@example.com",)),
        InboxItem(send.id, Event.OPENED, 999_999_999_999, ("c1@example.com",)),  # year 33658
        InboxItem(send.id, Event.CLICKED, NOON, ("c2@example.com", "bad\x00@example.com")),
        InboxItem(send.id, Event.OPENED, NOON, ("c3@example.com",)),
    ])
    await _map_until_done(store, now)
    counts = await store.event_counts("t")
    assert counts["opened"] == (2, 0)  # c0 and c3: every healthy callback, once
    async with store.db.read() as session:
        problems = (await session.execute(select(CallbackProblem.kind, CallbackProblem.detail)
                                          )).all()
        left = (await session.execute(select(CallbackInbox.processed_at,
                                             CallbackInbox.last_error))).all()
    assert all(processed is not None for processed, _ in left)
    unmappable = [detail for kind, detail in problems if kind == "unmappable"]
    assert any("999999999999" in d and "year" in d for d in unmappable), problems
    # SQLite maps a NUL address like any unknown one; PostgreSQL refuses it in the SQL, and
    # only that row is set aside.
    assert (any("clicked" in d for d in unmappable)
            or any("bad" in d for kind, d in problems if kind == "unknown_address")), problems
    await store.db.dispose()


async def test_a_row_the_sql_fails_on_is_retried_then_set_aside_alone(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever breaks the mapping's SQL for one row (PostgreSQL's NUL above; here any
    # error): the pass maps the others one by one, the bad row waits and is retried, and
    # after MAX_MAPPING_ATTEMPTS it is set aside as one problem.
    store = await open_store(database_url)
    now = [float(NOON + 60)]
    store.clock = lambda: now[0]
    await pulled_campaign(store, [entry(i) for i in range(3)])
    send = (await store.sends("t", list(SendState)))[0]
    original = CallbackStore._map

    def failing(self: CallbackStore, connection: Connection, send_id: int, event: Event,
                day: dt.date, addresses: str, at: float) -> None:
        if event == Event.CLICKED:
            raise ValueError("the SQL failed on this row")
        original(self, connection, send_id, event, day, addresses, at)

    monkeypatch.setattr(CallbackStore, "_map", failing)
    await store.record_callbacks([
        InboxItem(send.id, Event.OPENED, NOON, ("c0@example.com",)),
        InboxItem(send.id, Event.CLICKED, NOON, ("c1@example.com",)),
        InboxItem(send.id, Event.OPENED, NOON, ("c2@example.com",))])
    await store.process_inbox()
    assert (await store.event_counts("t"))["opened"] == (2, 0)
    async with store.db.read() as session:
        waiting = (await session.execute(select(CallbackInbox.attempts, CallbackInbox.retry_at)
                                         .where(CallbackInbox.processed_at.is_(None)))).all()
    assert [attempts for attempts, _ in waiting] == [1]
    assert (waiting[0][1] or 0.0) > now[0]  # waits its pause
    await _map_until_done(store, now)
    async with store.db.read() as session:
        problems = (await session.execute(select(CallbackProblem.kind, CallbackProblem.detail)
                                          )).all()
    assert [kind for kind, _ in problems] == ["unmappable"]
    assert "clicked" in problems[0][1] and "the SQL failed" in problems[0][1]
    assert "clicked" not in await store.event_counts("t")
    await store.db.dispose()


async def test_mapping_is_per_tenant(database_url: str) -> None:
    store = await open_store(database_url)
    await pulled_campaign(store, [entry(i) for i in range(2)])
    other, _ = await store.open_campaign("u", 78, 504)
    await store.store_audience_page(other.id, "email", 0, [entry(9)], last_page=True)
    sends = {s.tenant: s for t in ("t", "u") for s in await store.sends(t, list(SendState))}
    await store.record_callbacks([
        InboxItem(sends["t"].id, Event.OPENED, NOON, ("c0@example.com",)),
        InboxItem(sends["u"].id, Event.OPENED, NOON, ("c9@example.com",))])
    assert await store.process_inbox(tenant="u") == 1
    assert "opened" not in await store.event_counts("t")
    assert (await store.event_counts("u"))["opened"] == (1, 0)
    assert await store.process_inbox(tenant="t") == 1
    assert (await store.event_counts("t"))["opened"] == (1, 0)
    await store.db.dispose()


async def test_a_problem_heard_again_is_one_row_with_a_count(database_url: str) -> None:
    store = await open_store(database_url)
    now = [1_000.0]
    store.clock = lambda: now[0]
    for _ in range(3):
        await store.record_problem("t", "report", "Optimove answered 503")
        now[0] += 10
    await pulled_campaign(store, [entry(0)])
    send = (await store.sends("t", list(SendState)))[0]
    for _ in range(3):  # the platform retries a callback with an unknown address
        await store.record_callbacks([InboxItem(send.id, Event.OPENED, NOON,
                                                ("stranger@example.com",))])
        await store.process_inbox()
        now[0] += 10
    async with store.db.read() as session:
        problems = (await session.execute(select(Problem.message, Problem.count, Problem.at,
                                                 Problem.last_at))).all()
        unknown = (await session.execute(select(CallbackProblem.count).where(
            CallbackProblem.kind == "unknown_address"))).all()
    assert problems == [("Optimove answered 503", 3, 1_000.0, 1_020.0)]
    assert unknown == [(3,)]
    assert (await store.recent_problems())[0].count == 3
    await store.db.dispose()


async def test_a_huge_callback_of_strangers_keeps_a_bounded_number_of_problems(
        database_url: str) -> None:
    store = await open_store(database_url)
    await pulled_campaign(store, [entry(0)])
    send = (await store.sends("t", list(SendState)))[0]
    strangers = tuple(f"u{i}@example.com" for i in range(5_000))
    await store.record_callbacks([InboxItem(send.id, Event.OPENED, NOON,
                                            ("c0@example.com", *strangers))])
    assert await store.process_inbox() == 1
    assert (await store.event_counts("t"))["opened"] == (1, 0)
    async with store.db.read() as session:
        details = list(await session.scalars(select(CallbackProblem.detail)))
    assert 1 < len(details) <= 101  # not one row per address (UNKNOWN_LISTED + 1)
    assert any("more than" in detail for detail in details)
    await store.db.dispose()
