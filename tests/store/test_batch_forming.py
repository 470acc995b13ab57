"""Forming a report batch reads the group's oldest unreported interactions from the
unreported index in id order, on both databases (not every interaction, nor the group)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, text

from optibridge.domain import BatchState, Event, InboxItem, SendState
from optibridge.store import Store, open_store
from optibridge.store.reports import POSTGRES_FORMERS
from tests.store.plans import plan_of, statements_run
from tests.store.test_store import entry, pulled_campaign


async def _stored(store: Store, customers: int) -> None:
    """One send whose customers were each delivered (never batched) and opened."""
    await pulled_campaign(store, [entry(i) for i in range(customers)])
    send = (await store.sends("t", list(SendState)))[0]
    when = int(dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC).timestamp())
    addresses = tuple(f"c{i}@example.com" for i in range(customers))
    await store.record_callbacks([InboxItem(send.id, Event.DELIVERED, when, addresses),
                                  InboxItem(send.id, Event.OPENED, when, addresses)])
    while await store.process_inbox():
        pass


async def test_a_batch_is_formed_from_the_unreported_index(database_url: str) -> None:
    store = await open_store(database_url)
    try:
        await _stored(store, 3_000)
        with statements_run([store.db.write_engine.sync_engine], _is_batch_update) as seen:
            assert await store.form_report_batches("t", store.clock() + 1, max_size=1_000) == 3
        sizes = [b.size for b in await store.batches("t", [BatchState.PENDING])]
        assert sizes == [1_000, 1_000, 1_000]
        if not store.db.sqlite:
            async with store.db.write() as session:
                await session.execute(text("ANALYZE interaction"))
        plan = " ".join(await plan_of(store, seen[0]))
    finally:
        await store.db.dispose()
    assert "ix_interaction_unreported" in plan, plan
    assert "SCAN interaction" not in plan and "Seq Scan on interaction" not in plan, plan


async def test_batches_formed_at_once_take_disjoint_full_shares(database_url: str) -> None:
    """Formers of one group at once (PostgreSQL forms side by side) each take a full
    batch of the oldest unbatched: neither waits for the other's rows and finds them taken."""
    store = await open_store(database_url)
    try:
        await _stored(store, 3_000)
        (group,) = await store.report_groups("t", store.clock() + 1, 1_000)
        formed = await asyncio.gather(*(store.form_report_batch("t", group, 1_000)
                                        for _ in range(3)))
        assert [b.size if b else None for b in formed] == [1_000, 1_000, 1_000]
        members = [set(await store.batch_customers(b.id)) for b in formed if b]
        assert len(set().union(*members)) == 3_000
        assert await store.form_report_batch("t", group, 1_000) is None
    finally:
        await store.db.dispose()


async def test_postgresql_forms_a_groups_batches_side_by_side(postgres_url: str) -> None:
    store = await open_store(postgres_url)
    in_flight, most = 0, 0

    def started(_sql: str, _params: Any) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)

    def ended(_sql: str, _params: Any) -> None:
        nonlocal in_flight
        in_flight -= 1

    engine = store.db.write_engine.sync_engine
    try:
        await _stored(store, 4_000)
        for name, hook in (("before_cursor_execute", started), ("after_cursor_execute", ended)):
            event.listen(engine, name, _on_batch_update(hook))
        assert await store.form_report_batches("t", store.clock() + 1, max_size=1_000) == 4
    finally:
        await store.db.dispose()
    assert most == POSTGRES_FORMERS


def _is_batch_update(sql: str) -> bool:
    """Batch forming's UPDATE."""
    return sql.lstrip().upper().startswith("UPDATE INTERACTION")


def _on_batch_update(hook: Callable[[str, Any], None]) -> Callable[..., None]:
    """A cursor-execute listener calling ``hook(sql, params)`` for batch forming's UPDATE."""
    def seen(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        if _is_batch_update(sql):
            hook(sql, params)
    return seen
