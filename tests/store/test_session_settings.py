"""The store's PostgreSQL sessions: no JIT compiling (a count over a table whose
statistics lagged took 19-30 ms with it, 0.1 ms without), a 5 s limit on a transaction
left idle; a URL's own ``options`` replace both."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from optibridge.store import Database


async def _settings(url: str) -> tuple[str, str]:
    database = Database(url)
    try:
        async with database.read() as session:
            jit = await session.scalar(text("SHOW jit"))
            idle = await session.scalar(text("SHOW idle_in_transaction_session_timeout"))
            return str(jit), str(idle)
    finally:
        await database.dispose()


@pytest.mark.postgres
async def test_sessions_run_without_jit_and_with_the_idle_limit(postgres_url: str) -> None:
    assert await _settings(postgres_url) == ("off", "5s")


@pytest.mark.postgres
async def test_the_urls_own_options_replace_them(postgres_url: str) -> None:
    own = f"{postgres_url}?options=-c%20jit%3Don"
    assert (await _settings(own))[0] == "on"
