"""The pruning step: on a schedule, delete what is done with and older than the longest
report period plus ``timing.prune_margin_days`` (see ``store/pruning.py``)."""

from __future__ import annotations

from optibridge.config import Config
from optibridge.pipeline.context import TenantContext

DAY = 86_400.0
_last_pruned: dict[int, float] = {}  # per store: when this process last pruned it


def retention_seconds(config: Config) -> float:
    """How long prunable rows are kept: the longest report period plus the margin."""
    longest = max(tenant.report_days for tenant in config.tenants.values())
    return (longest + config.timing.prune_margin_days) * DAY


async def prune_step(ctx: TenantContext) -> int:
    """Prune, at most every ``timing.prune_every`` seconds. The tables are shared by the
    tenants, so the holder of the first tenant's lease does it."""
    if ctx.name != min(ctx.config.tenants):
        return 0
    now = ctx.store.clock()
    if now - _last_pruned.get(id(ctx.store), 0.0) < ctx.config.timing.prune_every:
        return 0
    _last_pruned[id(ctx.store)] = now
    pruned = await ctx.store.prune(before=now - retention_seconds(ctx.config))
    if pruned.total:
        ctx.log.info("prune.done", **pruned.counts)
    return 0  # nothing more to do until the next time
