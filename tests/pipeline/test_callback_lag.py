"""A platform whose callbacks run late (the sandbox's callback_delay..callback_lag_max) delays
Dropped instead of causing it: nobody sent is reported Dropped, no callback is late
(SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

from optibridge.demo import Rehearsal
from optibridge.sandbox.platform import PlatformFaults
from optibridge.store import Database, Store
from tests.pipeline.conftest import assert_reconciled, run_to_the_end


async def _late_problems(url: str) -> int:
    store = Store(Database(url))
    try:
        return (await store.problem_counts()).get("late", 0)
    finally:
        await store.db.dispose()


def test_callbacks_running_behind_the_quiet_period_drop_no_sent_customer(
        rehearsal: Rehearsal) -> None:
    # Quiet period configured: window 0.3 s + margin 1 s. The platform's callbacks come
    # 2-6 s after their events, far behind it.
    rehearsal.platform_faults = PlatformFaults(callback_delay=2.0, callback_lag_max=6.0,
                                               seed=4)
    rows = run_to_the_end(rehearsal, timeout=240)
    assert_reconciled(rows)
    assert rehearsal.database_url is not None
    assert asyncio.run(_late_problems(rehearsal.database_url)) == 0
