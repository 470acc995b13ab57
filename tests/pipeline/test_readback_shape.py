"""Read-back fails safe: its call's name and path are settings, and rows of a shape we do
not know (seed 001's feature flag, or GetCampaignEngagementMetrics) make read-back unusable
for the tenant: in-doubt batches are held with a problem, never misread and re-sent."""

from __future__ import annotations

from optibridge.domain import BatchState
from optibridge.optimove.client import OptimoveClient
from optibridge.ratelimit import SlidingWindowLimiter
from optibridge.retry import RetryPolicy
from optibridge.sandbox.optimove import FaultPlan
from tests.pipeline.in_doubt_world import campaign, pipeline, report_until_settled


async def test_an_unknown_shape_holds_in_doubt_batches_with_a_problem(
        database_url: str) -> None:
    async with pipeline(database_url) as (ctx, sandbox):
        # The tenant's read-back is set to the announced replacement.
        await ctx.optimove.aclose()
        ctx.optimove = OptimoveClient(
            ctx.tenant.optimove_url, "k", limiter=SlidingWindowLimiter(100_000, 1.0),
            retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02),
            readback=("GetCampaignEngagementMetrics", "customers/GetCampaignEngagementMetrics"))
        await campaign(ctx, sandbox, later_days=False, customers=6, templates=(7,))
        sandbox.set_faults(FaultPlan(lost_response_rate=1.0,
                                     functions=frozenset({"UpdateCampaignInteractions"})))
        await report_until_settled(ctx, 0.3)
        sandbox.set_faults(None)
        counts = await report_until_settled(ctx, 3.0)
        held = await ctx.store.batches("t", [BatchState.IN_DOUBT])
        assert held and counts["in_doubt"] == len(held) and not counts["pending"]
        assert max(sandbox.interaction_counts("t").values()) == 1  # nothing sent twice
        assert "GetCampaignEngagementMetrics" in {e.function for e in sandbox.journal("t")}
        lag = await ctx.store.readback_lag("t")
        assert lag.unusable_kind == "shape"
        problems = [p.message for p in await ctx.store.recent_problems(50)]
        unusable = [m for m in problems if "read-back unusable" in m]
        assert unusable and "shape we do not know" in unusable[0]
        assert '"metric"' in unusable[0]  # the answer as it came
