"""A whole rehearsal (both sandboxes, the service in its own process) against the least
convenient reading of GetCustomerChannelInteractions, with report answers lost."""

from __future__ import annotations

from optibridge.demo import Rehearsal
from optibridge.sandbox.optimove import FaultPlan, ReadbackDate, ReadbackRows
from tests.pipeline.conftest import assert_reconciled, run_to_the_end


def test_late_distinct_send_dated_read_back_loses_and_duplicates_nothing(
        rehearsal: Rehearsal) -> None:
    rehearsal.optimove_faults = FaultPlan(
        lost_response_rate=0.1, seed=4, functions=frozenset({"UpdateCampaignInteractions"}),
        readback_delay_seconds=2.0, readback_rows=ReadbackRows.DISTINCT,
        readback_date=ReadbackDate.SEND)
    # No sample read back at the end: a late read-back may not show the last calls yet.
    rows = run_to_the_end(rehearsal, timeout=240, sample=0)
    assert_reconciled(rows)
    counts = rehearsal.optimove.interaction_counts("demo")
    assert [key for key, n in counts.items() if n > 1] == []
    assert any(e.fault == "lost_response" and e.function == "UpdateCampaignInteractions"
               for e in rehearsal.optimove.journal("demo"))
