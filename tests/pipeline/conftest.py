"""End-to-end helpers: a Rehearsal (both sandboxes + the service) run to the end."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from optibridge.demo import ReconciliationRow, Rehearsal


@pytest.fixture
def rehearsal(tmp_path: Path, database_url: str) -> Iterator[Rehearsal]:
    run = Rehearsal(customers=600, workdir=tmp_path, database_url=database_url,
                    callback_window=0.3)
    yield run
    run.close()


def run_to_the_end(run: Rehearsal, timeout: float = 120.0, sample: int = 10
                   ) -> list[ReconciliationRow]:
    """Start everything, fire the campaign, wait until all is reported, reconcile."""
    if not run.servers:
        run.start_sandboxes()
    run.register_and_load()  # before the service: its own calls would share the key's limit
    run.start_service()
    assert run.fire() == [200, 200]
    asyncio.run(run.wait_settled(timeout))
    run.stop_service()
    return asyncio.run(run.reconcile(sample))


def assert_reconciled(rows: list[ReconciliationRow]) -> None:
    table = "\n".join(str(row) for row in rows)
    assert all(row.matches for row in rows), table
    by_event = {row.event: row for row in rows}
    # The campaign really produced each kind of event (so the equalities are not 0 == 0).
    for event in ("submitted", "delivered", "opened", "clicked", "bounced", "dropped"):
        assert by_event[event].stored > 0, table
