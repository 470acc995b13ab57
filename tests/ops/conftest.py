"""One small campaign run end to end on the sandboxes, its service left running, shared by
the tests of the status page, the metrics and doctor (a run takes a few seconds)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from optibridge.config import Config, parse_config
from optibridge.demo import Rehearsal
from optibridge.store import Database, Store

CUSTOMERS = 400


@pytest.fixture(scope="session")
def settled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    """Both sandboxes and the service; the campaign sent, heard back and reported."""
    run = Rehearsal(customers=CUSTOMERS, workdir=tmp_path_factory.mktemp("ops"),
                    callback_window=0.3)
    try:
        run.start_sandboxes()
        run.start_service()
        run.register_and_load()
        assert run.fire() == [200, 200]
        asyncio.run(run.wait_settled(120))
        yield run
    finally:
        run.close()


@pytest.fixture
async def store(settled: Rehearsal) -> AsyncIterator[Store]:
    opened = Store(Database(settled.config.server.database_url))
    yield opened
    await opened.db.dispose()


def small_config(tmp_path: Path, **server: Any) -> Config:
    """A one-tenant config whose remote URLs are never called (the worker does not run)."""
    data = {
        "server": {"public_url": "http://127.0.0.1:9", "signing_secret_env": "S",
                   "database_url": f"sqlite:///{tmp_path / 'ops.db'}", **server},
        "tenants": {"acme": {
            "optimove_url": "http://127.0.0.1:9", "api_key_env": "K",
            "channels": {"1": {"type": "email", "address_attribute": "Email"}},
            "platform": {"base_url": "http://127.0.0.1:9", "api_key_env": "P",
                         "bounce_domain": 1}}},
    }
    environ = {"S": "signing-secret-0123456789", "K": "optimove-key-abcdef",
               "P": "platform-key-abcdef", "T": "admin-token-0123456789"}
    return parse_config(data, "test", environ=environ)
