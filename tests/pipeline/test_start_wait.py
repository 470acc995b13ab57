"""Issue 15 item 4: a new lease holder waits only until the calls the database counts for
the API key have left the window (at most one window), not a whole window on every start.
SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from optibridge.pipeline.lease import LeasedLimiter, LeasedWindow, fingerprint
from optibridge.store import Store, open_store

SPAN = 5.0  # the key's window in these tests (seconds)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await open_store(database_url)
    try:
        yield opened
    finally:
        await opened.db.dispose()


async def _holder(store: Store) -> LeasedLimiter:
    limiter = LeasedLimiter(LeasedWindow(store, "api-key", 50, SPAN, tenant="t", holder="h"))
    asked = time.monotonic()
    grant = await store.acquire_lease("t", "h", 30.0)
    limiter.held(grant, asked, took_over=True, wait=await limiter.window_clears_in())
    return limiter


async def test_a_holder_whose_key_nobody_used_lately_calls_at_once(store: Store) -> None:
    limiter = await _holder(store)
    assert limiter.not_before <= time.monotonic()
    async with limiter.slot():  # the first call is let go without a window's wait
        pass
    assert await store.calls_in_window(fingerprint("api-key"), SPAN) == 1


async def test_a_holder_waits_until_the_keys_last_call_left_the_window(store: Store) -> None:
    key = fingerprint("api-key")
    other = await store.reserve_call(key, 50, SPAN)  # another process's call, just ended
    assert other.call_id is not None
    await store.end_call(other.call_id)
    clears_in = await store.window_clears_in(key, SPAN)
    assert SPAN / 2 < clears_in <= SPAN
    limiter = await _holder(store)
    assert SPAN / 2 < limiter.not_before - time.monotonic() <= limiter.per_seconds + 0.2


async def test_an_unended_call_makes_a_holder_wait_one_window_at_most(store: Store) -> None:
    key = fingerprint("api-key")
    assert (await store.reserve_call(key, 50, SPAN)).call_id is not None  # never ended
    assert await store.window_clears_in(key, SPAN, unended_for=30.0) > SPAN  # counted long
    limiter = await _holder(store)
    # ... but the wait is capped at one window, as before: the database still counts it.
    assert limiter.not_before - time.monotonic() <= limiter.per_seconds + 0.2
