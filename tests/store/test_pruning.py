"""Bounded growth: rows done with and older than the report period plus a margin are pruned;
what is still pending or recent stays (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import func, select

from optibridge.domain import Event, InboxItem, SendState
from optibridge.pipeline.pruning import retention_seconds
from optibridge.store import open_store
from optibridge.store.schema import CallbackInbox, CallbackProblem, Notification, Problem
from tests.service.test_endpoints import make_config
from tests.store.test_inbox_isolation import NOON
from tests.store.test_store import entry, pulled_campaign

DAY = 86_400.0


async def test_old_rows_that_are_done_with_are_pruned(database_url: str) -> None:
    store = await open_store(database_url)
    now = [float(NOON)]
    store.clock = lambda: now[0]
    await pulled_campaign(store, [entry(0)])
    send = (await store.sends("t", list(SendState)))[0]
    # Old: a mapped callback (with an unknown address), a problem, a handled notification.
    await store.record_callbacks([InboxItem(send.id, Event.OPENED, NOON, ("x@example.com",))])
    await store.process_inbox()
    await store.record_problem("t", "report", "old trouble")
    await store.record_notification("t", 13, 5, 504, {"EventTypeID": 13})
    for note in await store.pending_notifications("t"):
        await store.mark_notification(note.id, "done")
    # Old but not done with: a callback not mapped yet.
    await store.record_callbacks([InboxItem(999, Event.OPENED, NOON, ("y@example.com",))])
    now[0] += 30 * DAY
    await store.record_problem("t", "report", "new trouble")  # recent
    pruned = await store.prune(before=now[0] - 14 * DAY, chunk=1)  # chunks of one row
    assert pruned.counts["callback_inbox"] == 1
    assert pruned.counts["callback_problem"] == 1
    assert pruned.counts["problem"] == 1
    assert pruned.counts["notification"] == 1
    async with store.db.read() as session:
        left = {model.__tablename__: int(await session.scalar(
            select(func.count()).select_from(model)) or 0)
            for model in (CallbackInbox, CallbackProblem, Problem, Notification)}
    assert left == {"callback_inbox": 1, "callback_problem": 0, "problem": 1,
                    "notification": 0}
    assert (await store.prune(before=now[0] - 14 * DAY)).total == 0
    await store.db.dispose()


def test_retention_is_the_longest_report_period_plus_the_margin() -> None:
    config = make_config("sqlite:///x.db")
    assert retention_seconds(config) == (7 + 7) * DAY  # report_days 7, prune_margin_days 7
