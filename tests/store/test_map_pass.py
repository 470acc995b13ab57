"""A mapping pass takes what fits its budget (addresses read only for those) and says when
it stopped short, so the mapper knows more waits; the rest is mapped by the next passes."""

from __future__ import annotations

from optibridge.domain import Event, InboxItem
from optibridge.store import open_store
from optibridge.store.callbacks import MAPPING_BUDGET, POSTGRES_MAPPING_BUDGET

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
