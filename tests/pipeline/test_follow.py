"""Issue 8: each platform campaign followed to its end; whoever was not sent to is Dropped."""

from __future__ import annotations

from optibridge.demo import ReconciliationRow, Rehearsal
from optibridge.sandbox.platform import PlatformFaults
from tests.pipeline.conftest import assert_reconciled, run_to_the_end


def dropped_row(rows: list[ReconciliationRow]) -> ReconciliationRow:
    return next(row for row in rows if row.event == "dropped")


def test_campaign_ending_error_halfway_drops_exactly_the_unsent(rehearsal: Rehearsal) -> None:
    rehearsal.platform_faults = PlatformFaults(fail_campaigns_after=0.5, seed=5)
    rows = run_to_the_end(rehearsal)
    assert_reconciled(rows)
    missing_address = sum(1 for c in rehearsal.audience if c.address is None)
    dropped = dropped_row(rows)
    # Half of every send was never sent: far more Dropped than the address-less customers.
    assert dropped.stored > missing_address + len(rehearsal.audience) // 4
    assert {c.state for c in rehearsal.platform.campaigns()} == {"ERROR"}


def test_withheld_submitted_events_become_dropped_once(rehearsal: Rehearsal) -> None:
    rehearsal.platform_faults = PlatformFaults(withhold_submitted_rate=0.1, seed=9)
    rows = run_to_the_end(rehearsal)
    assert_reconciled(rows)
    missing_address = sum(1 for c in rehearsal.audience if c.address is None)
    assert dropped_row(rows).stored > missing_address
