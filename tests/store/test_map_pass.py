"""A mapping pass takes what fits its budget (addresses read only for those) and says when
it stopped short, so the mapper knows more waits; the rest is mapped by the next passes."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from optibridge.domain import Event, InboxItem
from optibridge.store import Store, open_store
from optibridge.store.callbacks import MAPPING_BUDGET, POSTGRES_MAPPING_BUDGET
from optibridge.store.schema import CallbackInbox

WHEN = 1_790_000_000


async def test_a_pass_says_when_more_waits(database_url: str) -> None:
    store = await open_store(database_url)
    try:
        budget = MAPPING_BUDGET if store.db.sqlite else POSTGRES_MAPPING_BUDGET
        size = budget * 3 // 5  # two do not fit one pass
        await store.record_callbacks([InboxItem(
            7, Event.OPENED, WHEN, tuple(f"c{n}.{i}@x" for i in range(size)))
            for n in range(3)])
        assert await store.map_pass() == (1, True)
        assert await store.map_pass() == (1, True)
        assert await store.map_pass() == (1, False)
        assert await store.map_pass() == (0, False)
        await store.record_callbacks([InboxItem(7, Event.OPENED, WHEN, ("a@x",))
                                      for _ in range(3)])
        assert await store.map_pass(limit=2) == (2, True)  # at its limit
        assert await store.map_pass(limit=2) == (1, False)
        assert await store.inbox_backlog() == 0
    finally:
        await store.db.dispose()


async def unmapped(store: Store) -> list[int]:
    async with store.db.read() as session:
        return list(await session.scalars(select(CallbackInbox.id).where(
            CallbackInbox.processed_at.is_(None)).order_by(CallbackInbox.id)))


async def test_a_mapper_maps_what_another_is_not_mapping(database_url: str) -> None:
    """PostgreSQL: a mapper (a send's follow step, say) maps the callbacks no other
    mapper's open transaction holds, at once, and leaves the held ones to their holder,
    instead of waiting for it to commit (or giving all of its own up). (SQLite has one
    writer at a time: nothing to pass over.)"""
    store = await open_store(database_url)
    if store.db.sqlite:
        await store.db.dispose()
        pytest.skip("SQLite's writers take turns")
    try:
        await store.record_callbacks([InboxItem(7, Event.OPENED, WHEN, (f"{n}@x",))
                                      for n in range(2)])
        first = min(await unmapped(store))
        async with store.db.write() as other:  # another mapper holds the first
            await other.execute(select(CallbackInbox.id).where(CallbackInbox.id == first)
                                .with_for_update())
            assert await asyncio.wait_for(store.map_pass(), timeout=2) == (1, False)
        assert await unmapped(store) == [first]  # its holder let it go
        assert await store.map_pass() == (1, False)
        assert await store.inbox_backlog() == 0
    finally:
        await store.db.dispose()
