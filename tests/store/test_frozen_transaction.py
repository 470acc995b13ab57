"""A process frozen inside a PostgreSQL transaction (SIGSTOP, a VM pause) does not hold
its locks long: its successor gets through while it is still frozen."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from optibridge.store import Database, Store, open_store
from optibridge.store.schema import TenantLease


async def test_a_frozen_holders_open_transaction_does_not_block_its_successor(
        postgres_url: str) -> None:
    store = await open_store(postgres_url)
    await store.acquire_lease("t", "a", ttl=1.0)
    frozen = Store(Database(postgres_url))
    locked = asyncio.Event()

    async def freeze_in_a_transaction() -> None:
        async with frozen.db.write() as session:
            await session.scalar(select(TenantLease).where(TenantLease.tenant == "t")
                                 .with_for_update())
            locked.set()
            await asyncio.sleep(12)  # stopped: no statement, the transaction stays open

    holder = asyncio.create_task(freeze_in_a_transaction())
    await locked.wait()
    await asyncio.sleep(1.1)  # a's lease has lapsed; b comes to take it over
    grant = await store.acquire_lease("t", "b", ttl=10)
    assert grant.held and grant.previous == "a"
    assert not holder.done()  # still frozen, yet its lock is gone
    holder.cancel()
    await asyncio.gather(holder, return_exceptions=True)
    await frozen.db.dispose()
    await store.db.dispose()
