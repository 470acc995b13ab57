"""The demo's flow reported through saveEvent: the same reconciliation, also under faults
(the in-doubt policy resend_after re-sends what the sandbox did not apply)."""

from __future__ import annotations

from optibridge.demo import Rehearsal
from optibridge.sandbox.optimove import FaultPlan
from tests.pipeline.conftest import assert_reconciled, run_to_the_end


def test_a_campaign_reported_by_save_event_reconciles_under_faults(
        rehearsal: Rehearsal) -> None:
    rehearsal.reporting = "engagement_events"
    # 500s and error bodies leave batches in doubt that the sandbox never applied; a
    # resend after 0.5 s then lands them once (a lost answer would count twice: not here).
    rehearsal.engagement_events = {"in_doubt": "resend_after", "resend_after_seconds": 0.5}
    rehearsal.optimove_faults = FaultPlan(error_rate=0.1, rate_limit_rate=0.1,
                                          error_body_rate=0.1, seed=5,
                                          functions=frozenset({"saveEvent"}))
    rows = run_to_the_end(rehearsal, timeout=120)
    assert_reconciled(rows)
    by_event = {row.event: row for row in rows}
    assert by_event["delivered"].reported == by_event["delivered"].stored > 0
    journal = rehearsal.optimove.journal("demo")
    assert {e.fault for e in journal if e.function == "saveEvent"} >= {
        "error", "rate_limit", "error_body", None}
    assert not any(e.function == "UpdateCampaignInteractions" for e in journal)
