"""The background work of ``optibridge serve``: per tenant, while holding its lease,
a few independent loops (so a reporting backlog never holds up a pull)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from optibridge.domain import CampaignStage, LeaseGrant, WorkKind
from optibridge.pipeline.audience import pull_item
from optibridge.pipeline.callbacks import map_callbacks
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.engagement import pull_campaign
from optibridge.pipeline.execution import execute_pending_sends
from optibridge.pipeline.follow import follow_sends
from optibridge.pipeline.lease import LeasedLimiter, LeaseLost
from optibridge.pipeline.listener import handle_pending_notifications
from optibridge.pipeline.nudges import Loop
from optibridge.pipeline.pruning import prune_step
from optibridge.pipeline.reporting import report_interactions, report_metrics
from optibridge.pipeline.templates import template_sync_step
from optibridge.pipeline.triggered import gather_step
from optibridge.pipeline.work import Isolation

log = structlog.get_logger("optibridge.worker")
Step = Callable[[TenantContext], Awaitable[int]]


async def pull_step(ctx: TenantContext) -> int:
    """Act on notifications and pull the campaigns that are due, ``pulls_at_once`` at a
    time under the tenant's one rate limit, until none is left to pull; a pull that fails
    is kept on its campaign (resumed from its stored page after its back-off) while the
    others go on.

    Side by side, and a campaign notified while others are pulled starts as soon as a
    place is free: one after another, a large campaign's pull held every later one up,
    and a pull alone left part of the limit unused (PostgreSQL, the 1,000,000-customer
    campaign: its email pull at 3.3 pages a second, a page's store about the limit's
    0.2 s a call, then its SMS pull)."""
    handled = 0
    running: dict[str, asyncio.Task[int | None]] = {}
    try:
        async with asyncio.TaskGroup() as group:  # the step cancelled: every pull with it
            while True:
                handled += await handle_pending_notifications(ctx)
                await _start_due_pulls(ctx, group, running)
                if not running:
                    return handled
                await _until_a_pull_ends_or_news(ctx, running)
                for item, task in list(running.items()):
                    if task.done():
                        handled += task.result() or 0
                        del running[item]
    except BaseExceptionGroup as errors:
        # A pull's own failures stay on it (``Isolation``); what gets here is about them
        # all (the lease lost, the database away), and the loop handles it as one.
        raise errors.exceptions[0] from None


async def _start_due_pulls(ctx: TenantContext, group: asyncio.TaskGroup,
                           running: dict[str, asyncio.Task[int | None]]) -> None:
    if len(running) >= ctx.tenant.pulls_at_once:
        return  # every place taken: nothing to read for
    pulls = await Isolation.load(ctx, WorkKind.PULL)
    for campaign in await ctx.store.campaigns_in(ctx.name, CampaignStage.PULLING):
        item = pull_item(campaign)  # REST pages or event-14 files
        if len(running) >= ctx.tenant.pulls_at_once:
            return
        if item not in running and pulls.due(item):
            running[item] = group.create_task(pulls.run(
                item, pull_campaign(ctx, campaign), campaign=campaign.campaign_id))


async def _until_a_pull_ends_or_news(ctx: TenantContext,
                                     running: dict[str, asyncio.Task[int | None]]) -> None:
    """Until one of the pulls ends, a notification comes (the listener nudges), or an idle
    period has passed (a pull backing off may be due again)."""
    news = asyncio.create_task(ctx.nudges.pause(Loop.PULL, ctx.timing.idle))
    try:
        await asyncio.wait([*running.values(), news], return_when=asyncio.FIRST_COMPLETED)
    finally:
        news.cancel()


async def map_step(ctx: TenantContext) -> int:
    """Map stored callbacks; while a pull or an upload is under way, a pass every
    ``map_during_campaigns`` seconds at most (``PullFirst``)."""
    await ctx.pull_first.until_none_under_way(ctx.timing.map_during_campaigns)
    return await map_callbacks(ctx.store, ctx.name)


METRICS_EVERY = 30.0  # seconds between metric passes while interactions are being reported


async def report_step(ctx: TenantContext) -> int:
    """Report interactions; metrics (a count over the whole report window) when the
    backlog is done or every ``METRICS_EVERY`` seconds, not on every pass. Paused after a
    recoverable error, the next pass goes when the pause ends (not an idle period later)."""
    if ctx.report_pause.active:
        await asyncio.sleep(ctx.report_pause.remaining)
    sent = await report_interactions(ctx)
    now = ctx.store.clock()
    if not sent or now - ctx.metrics_reported_at >= METRICS_EVERY:
        await report_metrics(ctx)
        ctx.metrics_reported_at = now
    return sent


STEPS: dict[Loop, Step] = {
    Loop.PULL: pull_step,
    Loop.EXECUTE: execute_pending_sends,
    Loop.MAP: map_step,
    Loop.REPORT: report_step,
    Loop.FOLLOW: follow_sends,
    Loop.TRIGGERED: gather_step,
    Loop.TEMPLATES: template_sync_step,
    Loop.PRUNE: prune_step,
}


async def run_loop(ctx: TenantContext, name: Loop, step: Step) -> None:
    """Run ``step`` until cancelled: at once again while it finds work, else after a pause
    (cut short when the loop is nudged); a failure is logged, kept as a problem, and
    retried with a growing pause."""
    failures = 0
    while True:
        try:
            did = await step(ctx)
            failures = 0
        except LeaseLost as lost:
            log.warning("worker.lease_lost", tenant=ctx.name, step=name, reason=str(lost))
            # the worker stops us if it is really gone
            await ctx.nudges.pause(name, ctx.timing.idle)
            continue
        except asyncio.CancelledError:
            raise
        except Exception as error:
            failures += 1
            log.warning("worker.step_failed", tenant=ctx.name, step=name,
                        error=f"{type(error).__name__}: {error}", failures=failures)
            await ctx.store.record_problem(ctx.name, name, f"{type(error).__name__}: {error}")
            await asyncio.sleep(min(60.0, ctx.timing.idle * 2 ** min(failures, 6)))
            continue
        if not did:
            await ctx.nudges.pause(name, ctx.timing.idle)


def new_holder() -> str:
    """This process's name as a lease holder (host, pid and a random part)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Worker:
    contexts: dict[str, TenantContext]
    limiters: dict[str, LeasedLimiter]
    lease_ttl: float = 30.0
    takeover_wait: bool = True
    holder: str = field(default_factory=new_holder)
    _tasks: dict[str, list[asyncio.Task[None]]] = field(default_factory=dict)

    async def run(self) -> None:
        try:
            while True:
                for name, ctx in self.contexts.items():
                    await self._keep_lease(name, ctx)
                await asyncio.sleep(self.lease_ttl / 6)
        finally:
            for name in list(self._tasks):
                await self._stop(name)
            for name, ctx in self.contexts.items():
                await ctx.store.release_lease(name, self.holder)

    async def _keep_lease(self, name: str, ctx: TenantContext) -> None:
        limiter = self.limiters[name]
        asked = time.monotonic()
        try:
            grant = await ctx.store.acquire_lease(name, self.holder, self.lease_ttl)
        except Exception as error:  # the database is away: stop calling until it is back
            log.warning("worker.lease_unavailable", tenant=name, error=str(error))
            grant = LeaseGrant(False)
        if grant.held and limiter.epoch not in (None, grant.epoch):
            # Our lease lapsed (we were paused) and we took it again: what the old epoch
            # had under way is in doubt, and its loops must not write with the old epoch.
            await self._stop(name)
        if not grant.held:
            limiter.lost()
            await self._stop(name)
            return
        fresh = name not in self._tasks
        wait: float | None = 0.0
        if fresh and (self.takeover_wait or grant.previous is not None):
            try:
                wait = await limiter.window_clears_in()
            except Exception:  # not known: wait the whole window, as is always safe
                wait = None
        limiter.held(grant, asked, took_over=fresh, wait=wait)
        if fresh:
            log.info("worker.lease_taken", tenant=name, holder=self.holder,
                     previous=grant.previous, epoch=grant.epoch)
            await ctx.store.doubt_interrupted_batches(name, grant.epoch)
            ctx.started_at = ctx.store.clock()
            self._tasks[name] = [asyncio.create_task(run_loop(ctx, step, fn), name=step)
                                 for step, fn in STEPS.items()]

    async def _stop(self, name: str) -> None:
        tasks = self._tasks.pop(name, [])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
