"""A campaign with one poisoned callback of each kind beside the healthy ones (SQLite and
PostgreSQL): every healthy interaction is reported exactly once, and the poisoned callbacks
end as problems with their reasons."""

from __future__ import annotations

import asyncio
import time

import httpx

from optibridge.demo import Rehearsal
from optibridge.domain import SendState
from optibridge.signing import UrlSigner
from optibridge.store import Database, Store
from tests.pipeline.conftest import assert_reconciled


async def _first_send(url: str) -> int | None:
    store = Store(Database(url))
    try:
        sends = await store.sends("demo", list(SendState))
        return sends[0].id if sends else None
    finally:
        await store.db.dispose()


async def _problems(url: str) -> list[tuple[str, str]]:
    store = Store(Database(url))
    try:
        return [(e.where, e.message) for e in await store.recent_errors(limit=200)]
    finally:
        await store.db.dispose()


def _poisons(when: int) -> dict[str, bytes]:
    strangers = "&".join(f"email[{i}]=stranger{i}@example.com" for i in range(50_000))
    return {
        "bad when": b"event=opened&when=999999999999&email[0]=c1@example.com",
        "NUL address": f"event=opened&when={when}&email[0]=c%00@example.com".encode(),
        "unknown address": f"event=opened&when={when}&email[0]=nobody@example.com".encode(),
        "huge": f"event=opened&when={when}&{strangers}".encode(),
        "malformed": b"event=opened&when=soon&email[0]=c1@example.com",
    }


def test_poisoned_callbacks_beside_healthy_ones(rehearsal: Rehearsal) -> None:
    run = rehearsal
    run.start_sandboxes()
    run.register_and_load()
    run.start_service()
    assert run.fire() == [200, 200]
    database = run.config.server.database_url
    send_id = None
    deadline = time.monotonic() + 60
    while send_id is None and time.monotonic() < deadline:
        send_id = asyncio.run(_first_send(database))
        time.sleep(0.2)
    assert send_id is not None
    url = UrlSigner(run.config.server.secret(), run.service_url).callback_url("demo", send_id)
    answers = {name: httpx.post(url, content=body, timeout=60).status_code
               for name, body in _poisons(int(time.time())).items()}
    assert answers == {"bad when": 400, "NUL address": 400, "unknown address": 200,
                       "huge": 200, "malformed": 400}
    asyncio.run(run.wait_settled(180))
    run.stop_service()
    assert_reconciled(asyncio.run(run.reconcile(10)))
    problems = asyncio.run(_problems(database))
    text = "\n".join(f"{where}: {message}" for where, message in problems)
    assert "999999999999" in text and "in the future" in text, text
    assert "NUL" in text, text
    assert "nobody@example.com" in text, text
    assert "more than 100 unknown addresses" in text, text
    assert "'when' is not a Unix time" in text, text
