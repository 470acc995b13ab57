"""Bad callbacks are refused at the door (400, kept as a problem) and never reach the
mapper: a `when` outside the send's window, a NUL in an address (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
from sqlalchemy import select

from optibridge.config import Config
from optibridge.domain import AudienceEntry, SendState
from optibridge.serving import RunningServer
from optibridge.store import Database, Store
from optibridge.store.schema import CallbackInbox, CallbackProblem
from tests.service.test_endpoints import callback_url, service  # noqa: F401  (fixture)

DUE = dt.datetime(2026, 11, 20, 10, 0)


async def _a_send(url: str) -> int:
    store = Store(Database(url))
    try:
        campaign, _ = await store.open_campaign("acme", 5, 504)
        entries = [AudienceEntry("C1", 7, DUE, "a@example.com")]
        await store.store_audience_page(campaign.id, "email", 0, entries, True)
        return (await store.sends("acme", list(SendState)))[0].id
    finally:
        await store.db.dispose()


async def _stored(url: str) -> tuple[list[int], list[tuple[str, str]]]:
    store = Store(Database(url))
    try:
        async with store.db.read() as session:
            inbox = list(await session.scalars(select(CallbackInbox.event_time)))
            problems = (await session.execute(select(CallbackProblem.kind,
                                                     CallbackProblem.detail))).all()
            return inbox, [(k, d) for k, d in problems]
    finally:
        await store.db.dispose()


def test_callbacks_outside_the_window_or_with_nul_are_400_and_kept_as_problems(
        service: tuple[Config, RunningServer]) -> None:  # noqa: F811
    config, running = service
    database = config.server.database_url
    send_id = asyncio.run(_a_send(database))
    url = callback_url(config, running, send_id)
    due = int(DUE.replace(tzinfo=dt.UTC).timestamp())
    refused = {
        "future": "event=opened&when=999999999999&email[0]=a@example.com",
        "before the send": f"event=opened&when={due - 2 * 86_400}&email[0]=a@example.com",
        "NUL": f"event=opened&when={due + 60}&email[0]=a%00@example.com",
    }
    for says, body in refused.items():
        answer = httpx.post(url, content=body.encode())
        assert answer.status_code == 400, (says, answer.text)
        assert says in answer.json()["error"]
    good = httpx.post(url, content=f"event=opened&when={due + 60}&email[0]=a@example.com"
                      .encode())
    assert good.status_code == 200, good.text
    inbox, problems = asyncio.run(_stored(database))
    assert inbox == [due + 60]  # only the good one reaches the mapper
    assert sorted(kind for kind, _ in problems) == ["malformed", "refused", "refused"]
    assert any("999999999999" in detail for _, detail in problems)
