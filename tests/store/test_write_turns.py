"""SQLite's one write connection: urgent writers go before background ones that wait."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from optibridge.store.db import Database


async def test_urgent_writes_go_before_waiting_background_writes(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    order: list[str] = []
    holding, release = asyncio.Event(), asyncio.Event()

    async def write(name: str, urgent: bool = False, hold: bool = False) -> None:
        async with db.write(urgent=urgent) as session:
            await session.execute(text("SELECT 1"))
            order.append(name)
            if hold:
                holding.set()
                await release.wait()

    first = asyncio.create_task(write("first", hold=True))
    await holding.wait()
    waiting = [asyncio.create_task(write("mapping")),
               asyncio.create_task(write("report")),
               asyncio.create_task(write("callback", urgent=True))]
    await asyncio.sleep(0.05)  # all three are queued behind the first
    cancelled = asyncio.create_task(write("gone", urgent=True))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    release.set()
    await asyncio.gather(first, *waiting)
    assert order == ["first", "callback", "mapping", "report"]
    async with db.write() as session:  # the cancelled waiter did not keep a turn
        await session.execute(text("SELECT 1"))
    await db.dispose()
