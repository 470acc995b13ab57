"""SQLite's driver writes (``Database.write_driver``) run on a thread of their own: the
database stays usable after ``dispose`` (as an engine does), and a write whose caller is
cancelled keeps the write turn until its transaction is over."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from sqlalchemy import Connection

from optibridge.store import open_store


async def test_driver_writes_go_on_after_dispose(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'o.db'}")
    await store.record_problem("t", "test", "before")
    await store.db.dispose()
    await store.record_problem("t", "test", "after")
    assert {p.message for p in await store.recent_problems()} == {"before", "after"}
    await store.db.dispose()


async def test_a_cancelled_driver_write_keeps_the_turn_until_it_is_over(tmp_path: Path
                                                                       ) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'o.db'}")
    started, ended = threading.Event(), [0.0]

    def slow(connection: Connection) -> None:
        started.set()
        time.sleep(0.3)
        ended[0] = time.monotonic()

    writing = asyncio.create_task(store.db.write_driver(slow))
    await asyncio.to_thread(started.wait, 5)
    writing.cancel()
    await asyncio.sleep(0.05)
    writing.cancel()  # again, while it waits for the thread
    async with store.db.write():
        entered = time.monotonic()  # the next writer's turn
    assert writing.cancelled() and entered >= ended[0] > 0
    await store.db.dispose()
