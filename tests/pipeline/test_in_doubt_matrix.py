"""Every reading of GetCustomerChannelInteractions that no source rules out, with calls
applied but their answers lost (and calls refused with a 5xx): 0 lost, 0 duplicated, and
no batch left in doubt."""

from __future__ import annotations

import itertools

import pytest

from optibridge.sandbox.optimove import FaultPlan, ReadbackDate, ReadbackRows
from tests.pipeline.in_doubt_world import campaign, pipeline, report_until_settled

CELLS = list(itertools.product([0.0, 2.0], list(ReadbackRows), list(ReadbackDate),
                               [False, True]))


@pytest.mark.parametrize(("delay", "rows", "dates", "later_days"), CELLS,
                         ids=[f"delay{d:g}-{r}-{f}-{'later' if later else 'sendday'}"
                              for d, r, f, later in CELLS])
async def test_whole_campaign_reported_exactly_once(
        database_url: str, delay: float, rows: ReadbackRows, dates: ReadbackDate,
        later_days: bool) -> None:
    async with pipeline(database_url) as (ctx, sandbox):
        expected = await campaign(ctx, sandbox, later_days=later_days)
        semantics = {"readback_delay_seconds": delay, "readback_rows": rows,
                     "readback_date": dates}
        # The first pass: some calls are applied and their answers lost, some refused
        # with a 500 (not applied, but just as unknown to us); re-sends then go through.
        sandbox.set_faults(FaultPlan(lost_response_rate=0.4, error_rate=0.2, seed=5,
                                     functions=frozenset({"UpdateCampaignInteractions"}),
                                     **semantics))  # type: ignore[arg-type]

        def both_seen() -> bool:
            faults = {e.fault for e in sandbox.journal("t")
                      if e.function == "UpdateCampaignInteractions"}
            return {"lost_response", "error"} <= faults

        await report_until_settled(ctx, within=30, done=both_seen)
        assert both_seen()
        sandbox.set_faults(FaultPlan(**semantics))  # type: ignore[arg-type]
        counts = await report_until_settled(ctx, within=60)
        held = sandbox.interaction_counts("t")
        assert set(held) == expected, "lost or unexpected interactions"
        assert [key for key, n in held.items() if n > 1] == [], "counted twice"
        assert counts["in_doubt"] == 0 and counts["pending"] == 0, counts
        lag = await ctx.store.readback_lag("t")
        assert lag.unusable is None and lag.lag_seconds is not None
        assert lag.lag_seconds >= delay - 0.1
