"""Flow 6 outbound: report interactions exactly once and metrics as running totals.

UpdateCampaignInteractions adds up repeated calls, so each report batch has an identity and
a state: pending -> sending -> sent. A call whose outcome is unknown leaves the batch in
doubt; it is resolved by reading back GetCustomerChannelInteractions for one of its
customers before anything is sent again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from optibridge.config import ChannelType, TenantConfig
from optibridge.domain import BatchState, MetricTotal, ReportBatchRecord
from optibridge.optimove.errors import (
    OptimoveError,
    OptimoveOutcomeUnknown,
    OptimoveRateLimited,
    OptimoveRequestRejected,
    OptimoveUnavailable,
)
from optibridge.optimove.models import (
    MAX_INTERACTION_CUSTOMERS,
    MAX_METRICS_PER_CALL,
    CampaignInteractions,
    CampaignMetric,
    InteractionEvent,
    Metric,
)
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.lease import LeaseLost
from optibridge.store import Store

IN_FLIGHT = 4  # concurrent report calls: enough to use the rate limit at real latencies
LOOKAHEAD = 8  # formed batches waiting for a call
PENDING_PER_PASS = 1_000  # batches formed earlier that one pass takes (more wait a pass)


async def send_batch(ctx: TenantContext, batch: ReportBatchRecord) -> BatchState:
    """Send one pending batch once; the state it ends in says what is known."""
    if not await ctx.store.mark_batch(batch.id, BatchState.SENDING, expect=BatchState.PENDING):
        return batch.state
    customers = await ctx.store.batch_customers(batch.id)
    call = CampaignInteractions(
        campaign_id=batch.campaign_id, channel_id=batch.channel_id,
        interaction_date=batch.interaction_date, template_id=batch.template_id,
        event_id=InteractionEvent(batch.event_id),
        recipient_group_id=batch.recipient_group_id, customer_ids=tuple(customers))
    note: str | None = None
    try:
        await ctx.optimove.update_campaign_interactions(call)
    except LeaseLost:
        # Refused by our own limiter before anything was sent.
        await ctx.store.mark_batch(batch.id, BatchState.PENDING, expect=BatchState.SENDING)
        raise
    except (OptimoveRateLimited, OptimoveUnavailable) as error:
        state, note = BatchState.PENDING, str(error)  # certainly not applied
    except OptimoveRequestRejected as error:
        state, note = BatchState.FAILED, str(error)
    except (TimeoutError, OptimoveOutcomeUnknown, OptimoveError, OSError) as error:
        state, note = BatchState.IN_DOUBT, str(error)
    else:
        state = BatchState.SENT
    await ctx.store.mark_batch(batch.id, state, expect=BatchState.SENDING, error=note)
    ctx.log.info("report.batch", batch=batch.id, campaign=batch.campaign_id,
                 event_id=batch.event_id, customers=len(customers), state=str(state))
    return state


async def resolve_in_doubt(ctx: TenantContext) -> int:
    """Read back each settled in-doubt batch: sent if it landed, pending if it did not."""
    settled_before = ctx.store.clock() - ctx.timing.in_doubt_wait
    resolved = 0
    for batch in await ctx.store.batches(ctx.name, [BatchState.IN_DOUBT]):
        if batch.updated_at > settled_before:
            continue
        customers = await ctx.store.batch_customers(batch.id)
        if not customers:
            await ctx.store.mark_batch(batch.id, BatchState.FAILED,
                                       expect=BatchState.IN_DOUBT, error="empty report batch")
            continue
        # Prefer a customer no other unresolved batch with this Optimove key reports: a row
        # read back for them can only come from this batch. Otherwise the batches sharing
        # the customer are resolved together (all landed, or none).
        shared = await ctx.store.customers_in_unresolved_peers(batch)
        probe = next((c for c in customers if c not in shared), customers[0])
        group = [batch.id, *await ctx.store.unresolved_peers_with(batch, probe)]
        try:
            rows = await ctx.optimove.get_customer_channel_interactions(
                probe, batch.interaction_date, batch.interaction_date, batch.channel_id)
        except OptimoveError as error:
            ctx.log.warning("report.read_back_failed", batch=batch.id, error=str(error))
            continue
        seen = sum(1 for r in rows if r.campaign_id == batch.campaign_id
                   and r.template_id == batch.template_id and r.event_id == batch.event_id
                   and r.recipient_group_id == batch.recipient_group_id
                   and r.date == batch.interaction_date)
        landed = seen - await ctx.store.times_reported(batch, probe)
        resolved += await _settle(ctx, group, landed)
    return resolved


async def _settle(ctx: TenantContext, group: list[int], landed: int) -> int:
    """Mark in-doubt batches that share a probe: all sent, none sent, or (some of them,
    which a read-back cannot tell apart) left for an operator."""
    if 0 < landed < len(group):
        await ctx.store.record_problem(
            ctx.name, "report", f"report batches {group} are in doubt and {landed} of them "
            "landed; which ones cannot be read back: check them in Optimove")
        return 0
    state = BatchState.SENT if landed >= len(group) else BatchState.PENDING
    for batch_id in group:
        await ctx.store.mark_batch(batch_id, state, expect=BatchState.IN_DOUBT)
    ctx.log.info("report.in_doubt_resolved", batches=group, landed=state == BatchState.SENT)
    return len(group)


async def report_interactions(ctx: TenantContext, *, flush_all: bool = False) -> int:
    """Send the pending batches and every batch ready to form now; returns batches sent.

    Forming (one short transaction per batch) feeds ``IN_FLIGHT`` senders through a queue
    of ``LOOKAHEAD`` formed batches, so calls go at the rate limit's pace instead of
    waiting for forming in turns. A failure stops the feeding; the calls in flight end
    before it is raised, so nothing is left half-known.
    """
    # Nothing of ours is in flight between passes: a batch still 'sending' was cut off
    # (crash, lost lease) and may or may not have landed.
    await ctx.store.suspect_interrupted_sends(ctx.name)
    await resolve_in_doubt(ctx)
    ready_before = ctx.store.clock() - (0 if flush_all else ctx.tenant.report_interval_seconds)
    ready: asyncio.Queue[ReportBatchRecord | None] = asyncio.Queue(LOOKAHEAD)
    stopped = asyncio.Event()
    failures: list[BaseException] = []
    sent = 0

    def fail(error: BaseException) -> None:
        failures.append(error)
        stopped.set()

    async def feed() -> None:
        try:
            async for batch in _batches_to_send(ctx, ready_before):
                if stopped.is_set():
                    break
                await ready.put(batch)
        except Exception as error:  # raised below, once the calls in flight have ended
            fail(error)
        for _ in range(IN_FLIGHT):
            await ready.put(None)  # the senders drain the queue, so this never blocks

    async def send() -> None:
        nonlocal sent
        while (batch := await ready.get()) is not None:
            if stopped.is_set():
                continue  # left pending for the next pass
            try:
                sent += await send_batch(ctx, batch) == BatchState.SENT
            except Exception as error:  # raised below, once the others have ended
                fail(error)

    await asyncio.gather(feed(), *(send() for _ in range(IN_FLIGHT)))
    if failures:
        raise failures[0]
    return sent


async def _batches_to_send(ctx: TenantContext, ready_before: float
                           ) -> AsyncIterator[ReportBatchRecord]:
    """Batches formed earlier and still pending, then new ones, one at a time."""
    for batch in await ctx.store.batches(ctx.name, [BatchState.PENDING],
                                         limit=PENDING_PER_PASS):
        yield batch
    async for formed in ctx.store.formed_report_batches(ctx.name, ready_before,
                                                        MAX_INTERACTION_CUSTOMERS):
        yield formed


def _with_sms_sent(tenant: TenantConfig, totals: dict[tuple[int, int, int, int], int]
                   ) -> dict[tuple[int, int, int, int], int]:
    """SMS has no submitted event (seed 003): its Sent is delivered plus bounced."""
    result = dict(totals)
    for (campaign_id, channel_id, template_id, metric_id), value in totals.items():
        channel = tenant.channels.get(channel_id)
        if channel is None or channel.type != ChannelType.SMS:
            continue
        if metric_id in (Metric.DELIVERED, Metric.BOUNCED):
            key = (campaign_id, channel_id, template_id, int(Metric.SENT))
            result[key] = result.get(key, 0) + value
    return result


async def metrics_due(store: Store, name: str, tenant: TenantConfig, refresh: float
                      ) -> list[MetricTotal]:
    """Totals that changed since last reported, or were last reported long ago (seed 002
    asks for reports several times a day for seven days)."""
    now = store.clock()
    totals = _with_sms_sent(tenant, await store.metric_totals(
        name, since=now - tenant.report_days * 86_400))
    reported = await store.reported_metrics(name)
    due = []
    for (campaign_id, channel_id, template_id, metric_id), value in sorted(totals.items()):
        last_value, last_at = reported.get(
            (campaign_id, channel_id, template_id, metric_id), (None, None))
        if last_value != value or last_at is None or last_at < now - refresh:
            due.append(MetricTotal(campaign_id, channel_id, template_id, metric_id, value,
                                   last_value, last_at))
    return due


async def report_metrics(ctx: TenantContext) -> int:
    """Send due running totals; totals are idempotent, so retries are safe."""
    due = await metrics_due(ctx.store, ctx.name, ctx.tenant, ctx.timing.metrics_refresh)
    for start in range(0, len(due), MAX_METRICS_PER_CALL):
        part = due[start:start + MAX_METRICS_PER_CALL]
        await ctx.optimove.update_campaign_metrics([
            CampaignMetric(channel_id=t.channel_id, campaign_id=t.campaign_id,
                           template_id=t.template_id, metric_id=Metric(t.metric_id),
                           metric_value=t.value) for t in part])
        await ctx.store.record_metrics_reported(ctx.name, part)
    return len(due)
