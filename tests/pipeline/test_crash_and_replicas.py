"""kill -9 of the service at random moments, and two replicas sharing one database."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from optibridge.demo import TENANT, Rehearsal
from optibridge.domain import SendState
from optibridge.store import Database, Store
from tests.pipeline.conftest import assert_reconciled

T = TypeVar("T")


def crash_rehearsal(tmp_path: Path, database_url: str) -> Rehearsal:
    # A small rate limit (5 per 1 s) makes the pull last long enough to be killed in, and
    # lets a successor take over a dead process's lease within seconds. The margin covers
    # the platform sandbox's callback retries (backoff doubling from 0.2 s) after a restart.
    return Rehearsal(customers=1500, workdir=tmp_path, database_url=database_url,
                     callback_window=0.3, service_mode="process", page_size=100,
                     rate_limit=(5, 1.0), lease_ttl=6.0, callback_margin=15.0)


def max_calls_in_a_window(times: list[float], window: float) -> int:
    recent: deque[float] = deque()
    worst = 0
    for moment in sorted(times):
        recent.append(moment)
        while moment - recent[0] >= window:
            recent.popleft()
        worst = max(worst, len(recent))
    return worst


def test_kill_minus_nine_at_random_moments_loses_nothing(tmp_path: Path,
                                                         database_url: str) -> None:
    run = crash_rehearsal(tmp_path, database_url)
    try:
        run.start_sandboxes()
        run.register_and_load()
        run.start_service()
        assert run.fire() == [200, 200]
        moments = random.Random(11)
        for _ in range(4):
            time.sleep(moments.uniform(0.5, 3.0))
            run.kill(run.service_port)
            run.start_process(run.service_port)
        asyncio.run(run.wait_settled(300))
        run.stop_service()
        rows = asyncio.run(run.reconcile(sample=10))
    finally:
        run.close()
    assert_reconciled(rows)


async def polled(url: str, found: Callable[[Store], Awaitable[T | None]], what: str,
                 tries: int, pause: float) -> T:
    """Ask the service's database until ``found`` answers (not None), at most ``tries``."""
    store = Store(Database(url))
    try:
        for _ in range(tries):
            answer = await found(store)
            if answer is not None:
                return answer
            await asyncio.sleep(pause)
        raise AssertionError(what)
    finally:
        await store.db.dispose()


async def uploading_while_pulling(url: str) -> None:
    """Until a send of a campaign still being pulled has recipients uploaded."""
    async def uploaded(store: Store) -> bool | None:
        sends = await store.sends_being_pulled(TENANT, [SendState.LISTED])
        return True if any(send.uploaded_through > 0 for send in sends) else None

    await polled(url, uploaded, "no send uploaded while its campaign was being pulled",
                 1500, 0.01)


def test_kill_minus_nine_while_a_send_uploads_during_its_pull(tmp_path: Path,
                                                              database_url: str) -> None:
    """The overlapped path: killed once a send has part of its list on the platform and
    its campaign's pull is still going; the successor resumes the pull and the upload from
    their recorded points, and every recipient is sent to once."""
    run = crash_rehearsal(tmp_path, database_url)
    try:
        run.start_sandboxes()
        run.register_and_load()
        run.start_service()
        assert run.fire() == [200, 200]
        asyncio.run(uploading_while_pulling(run.config.server.database_url))
        run.kill(run.service_port)
        run.start_process(run.service_port)
        asyncio.run(run.wait_settled(300))
        run.stop_service()
        rows = asyncio.run(run.reconcile(sample=10))
    finally:
        run.close()
    assert_reconciled(rows)


async def lease_holder(url: str) -> str:
    async def holder(store: Store) -> str | None:
        found = await store.lease_holder(TENANT)
        return None if found is None else found[0]

    return await polled(url, holder, "nobody took the tenant's lease", 200, 0.05)


def test_two_replicas_share_one_postgres_and_survive_losing_one(tmp_path: Path,
                                                                postgres_url: str) -> None:
    run = crash_rehearsal(tmp_path, postgres_url)
    try:
        run.start_sandboxes()
        run.register_and_load()
        run.start_service()  # replica A: the public URL points here
        other = run.new_port()
        run.start_process(other)  # replica B
        assert run.fire() == [200, 200]
        time.sleep(1.5)
        holder = asyncio.run(lease_holder(postgres_url))
        pids = {port: p.pid for port, p in run.processes.items()}
        victim = next(port for port, pid in pids.items() if f":{pid}:" in holder)
        run.kill(victim)
        if victim == run.service_port:  # A also serves HTTP: restart it, as a pod would be
            run.start_process(victim)
        asyncio.run(run.wait_settled(300))
        run.stop_service()
        rows = asyncio.run(run.reconcile(sample=0))
    finally:
        run.close()
    assert_reconciled(rows)
    journal = [e for e in run.optimove.journal(TENANT)]
    assert [(e.function, e.monotonic) for e in journal if e.status == 429] == []
    requests, per_seconds = run.rate_limit
    assert max_calls_in_a_window([e.monotonic for e in journal], per_seconds) <= requests
