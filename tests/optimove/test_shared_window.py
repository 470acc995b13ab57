"""One API key, several processes (replicas, a CLI command beside ``serve``, two tenants
with the same key): the key's window is counted in the database, so together they never
go over Optimove's limit."""

from __future__ import annotations

import asyncio

from optibridge.optimove import OptimoveClient
from optibridge.pipeline.lease import KeyWindow
from optibridge.ratelimit import SlidingWindowLimiter
from optibridge.sandbox.optimove import OptimoveSandbox, create_app
from optibridge.serving import serving
from optibridge.store import Database, Store, open_store
from tests.pipeline.test_crash_and_replicas import max_calls_in_a_window

KEY = "shared-key-0123456789"


async def test_processes_sharing_a_key_share_its_window(database_url: str) -> None:
    sandbox = OptimoveSandbox({KEY: "t"}, rate_limit=(5, 1.0))
    with serving(create_app(sandbox)) as running:
        await (await open_store(database_url)).db.dispose()  # migrated once
        stores = [Store(Database(database_url)) for _ in range(3)]
        clients = [OptimoveClient(running.url, KEY, limiter=SlidingWindowLimiter(
            5, 1.0, shared=KeyWindow(store, KEY, 5, 1.0))) for store in stores]
        try:
            await asyncio.gather(*(client.get_execution_channels()
                                   for client in clients for _ in range(6)))
        finally:
            for client, store in zip(clients, stores, strict=True):
                await client.aclose()
                await store.db.dispose()
    journal = sandbox.journal("t")
    assert len(journal) == 18
    assert [e.status for e in journal if e.status != 200] == []  # no 429
    assert max_calls_in_a_window([e.monotonic for e in journal], 1.0) <= 5
