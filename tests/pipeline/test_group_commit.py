"""Group commit: a burst goes in a few writes, every caller waits for its own item, and with
``writers`` > 1 (PostgreSQL's inbox) that many writes go side by side, none more."""

from __future__ import annotations

import asyncio

import pytest

from optibridge.pipeline.group_commit import GroupCommit


@pytest.mark.parametrize("writers", [1, 3])
async def test_writes_side_by_side_up_to_writers(writers: int) -> None:
    under_way = most = 0
    written: list[list[int]] = []
    release = asyncio.Event()

    async def write(items: list[int]) -> list[int]:
        nonlocal under_way, most
        under_way += 1
        most = max(most, under_way)
        await release.wait()
        under_way -= 1
        written.append(items)
        return [item * 10 for item in items]

    group = GroupCommit(write, max_items=4, writers=writers)
    callers = [asyncio.create_task(group.submit(n)) for n in range(20)]
    await asyncio.sleep(0.01)
    assert under_way == writers  # the first `writers` items each started a write
    release.set()
    assert await asyncio.gather(*callers) == [n * 10 for n in range(20)]
    assert most == writers
    assert sorted(n for items in written for n in items) == list(range(20))
    assert all(len(items) <= 4 for items in written)
    # Idle again: the next item starts a write of its own at once.
    assert await asyncio.wait_for(group.submit(99), 1) == 990


async def test_a_failed_write_fails_its_callers_only() -> None:
    async def write(items: list[int]) -> list[int]:
        if 13 in items:
            raise RuntimeError("disk full")
        return items

    group = GroupCommit(write, max_items=1, writers=2)
    results = await asyncio.gather(*(group.submit(n) for n in (12, 13, 14)),
                                   return_exceptions=True)
    assert results[0] == 12 and results[2] == 14
    assert isinstance(results[1], RuntimeError)
