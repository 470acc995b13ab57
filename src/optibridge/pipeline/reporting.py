"""Flow 6 outbound: report interactions exactly once and metrics as running totals.

UpdateCampaignInteractions adds up repeated calls, so each report batch has an identity and
a state: pending -> sending -> sent. A call whose outcome is unknown leaves the batch in
doubt; it is resolved by reading it back (pipeline/in_doubt.py) before anything is sent
again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from optibridge.config import TenantConfig
from optibridge.domain import BatchState, ChannelType, MetricTotal, ReportBatchRecord, WorkKind
from optibridge.events_config import Reporting
from optibridge.failures import NOT_APPLIED, CallFailed, UnexpectedAnswer, about_the_item
from optibridge.optimove.models import (
    MAX_INTERACTION_CUSTOMERS,
    MAX_METRICS_PER_CALL,
    CampaignInteractions,
    CampaignMetric,
    InteractionEvent,
    Metric,
)
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.event_reporting import (
    formed_event_batches,
    is_event_batch,
    save_batch,
    sendable,
    settle_event_doubts,
    still_fresh,
)
from optibridge.pipeline.in_doubt import resolve_in_doubt
from optibridge.pipeline.work import Isolation
from optibridge.store import Store
from optibridge.store.leases import LeaseLost

IN_FLIGHT = 4  # concurrent report calls: enough to use the rate limit at real latencies
LOOKAHEAD = 8  # formed batches waiting for a call
PENDING_PER_PASS = 1_000  # batches formed earlier that one pass takes (more wait a pass)


async def submit_batch(ctx: TenantContext, batch: ReportBatchRecord) -> BatchState:
    """Send one pending batch once; the state it ends in says what is known.

    Only a refusal of the batch's own content (a 400) is final: the batch becomes a dead
    letter with Optimove's answer kept. Any other error pauses the tenant's reporting
    (``ctx.report_pause``) and leaves the batch pending (surely not applied) or in doubt.
    """
    if is_event_batch(batch):
        if not await sendable(ctx, batch):
            return BatchState.PENDING
        if not await still_fresh(ctx, batch):
            return BatchState.EXPIRED
    if not await ctx.store.mark_batch(batch.id, BatchState.SENDING, expect=BatchState.PENDING,
                                      epoch=ctx.epoch):
        return batch.state
    note: str | None = None
    answer: str | None = None
    size = 0
    try:
        # The backend the batch was formed for, whatever the tenant reports by now.
        size = await (save_batch(ctx, batch) if is_event_batch(batch)
                      else _update_interactions(ctx, batch))
    except LeaseLost:
        # Refused before anything was sent (our lease lapsed or moved): as it was.
        await ctx.store.mark_batch(batch.id, BatchState.PENDING, expect=BatchState.SENDING,
                                   epoch=ctx.epoch)
        raise
    except (CallFailed, ValueError, OSError) as error:
        state, note = _after(error), str(error)
        if state == BatchState.DEAD_LETTER:
            answer = getattr(error, "body", None) or note
        else:
            await _pause(ctx, error)
    else:
        state = BatchState.SENT
        await _resume(ctx)
    await ctx.store.mark_batch(batch.id, state, expect=BatchState.SENDING, error=note,
                               answer=answer, epoch=ctx.epoch, event="call", actor=ctx.actor)
    ctx.log.info("report.batch", batch=batch.id, campaign=batch.campaign_id,
                 event_id=batch.event_id, customers=size or batch.size, state=str(state),
                 backend=str(batch.backend))
    return state


async def _update_interactions(ctx: TenantContext, batch: ReportBatchRecord) -> int:
    customers = await ctx.store.batch_customers(batch.id)
    await ctx.optimove.update_campaign_interactions(CampaignInteractions(
        campaign_id=batch.campaign_id, channel_id=batch.channel_id,
        interaction_date=batch.interaction_date, template_id=batch.template_id,
        event_id=InteractionEvent(batch.event_id),
        recipient_group_id=batch.recipient_group_id, customer_ids=tuple(customers)))
    return len(customers)


def _after(error: Exception) -> BatchState:
    """A failed report call's batch: a dead letter when the failure is about its content;
    else pending when the call surely was not applied (it is never sent twice), or in
    doubt."""
    if isinstance(error, UnexpectedAnswer):  # a 2xx: it may well have been applied
        return BatchState.IN_DOUBT
    if about_the_item(error):
        return BatchState.DEAD_LETTER
    return BatchState.PENDING if isinstance(error, NOT_APPLIED) else BatchState.IN_DOUBT


async def _pause(ctx: TenantContext, error: BaseException) -> None:
    """One problem row per pause (not one per try), and a log line per failure."""
    pause = ctx.report_pause
    pause.first, pause.longest = ctx.timing.report_retry_first, ctx.timing.report_retry_max
    if pause.failed(f"{type(error).__name__}: {error}"):
        ctx.log.warning("report.paused", error=pause.reason, retry_in=pause.delay())
        await ctx.store.record_problem(
            ctx.name, "report", "reporting paused (nothing is lost; it resumes by itself "
            f"when a call works, retrying with back-off): {pause.reason}")
    elif pause.paused:
        ctx.log.info("report.still_paused", error=pause.reason, failures=pause.failures,
                     retry_in=pause.delay())
    else:  # a lone failure: the next call tells whether it lasts (see Pause.strikes)
        ctx.log.info("report.call_failed", error=pause.reason)


async def _resume(ctx: TenantContext) -> None:
    lasted = ctx.report_pause.succeeded()
    if lasted is not None:
        ctx.log.warning("report.resumed", paused_seconds=round(lasted, 1))
        await ctx.store.record_problem(ctx.name, "report",
                                       f"reporting resumed after {lasted:.0f} s paused")


async def report_interactions(ctx: TenantContext, *, flush_all: bool = False) -> int:
    """Send the pending batches and every batch ready to form now; returns batches sent.

    Forming (one short transaction per batch) feeds ``IN_FLIGHT`` senders through a queue
    of ``LOOKAHEAD`` formed batches, so calls go at the rate limit's pace instead of
    waiting for forming in turns. A failure stops the feeding; the calls in flight end
    before it is raised, so nothing is left half-known.
    """
    if ctx.report_pause.active:
        return 0  # backing off after a recoverable error; the next try is a normal pass
    # Nothing of ours is in flight between passes: a batch still 'sending' was cut off
    # (crash, lost lease) and may or may not have landed.
    await ctx.store.doubt_interrupted_batches(ctx.name, ctx.epoch)
    await settle_event_doubts(ctx)  # saveEvent's policy: no calls, before the sending
    ready_before = ctx.store.clock() - (0 if flush_all else ctx.tenant.report_interval_seconds)
    ready: asyncio.Queue[ReportBatchRecord | None] = asyncio.Queue(LOOKAHEAD)
    stopped = asyncio.Event()
    finished = asyncio.Event()  # every batch of the pass sent or given up
    woken = asyncio.Event()  # a batch went in doubt, or the sending finished
    failures: list[BaseException] = []
    sent = unread = 0  # unread: batches gone in doubt since the last read-back began

    def fail(error: BaseException) -> None:
        failures.append(error)
        stopped.set()

    async def feed() -> None:
        try:
            async for batch in _batches_to_send(ctx, ready_before):
                if stopped.is_set() or ctx.report_pause.active:
                    break
                await ready.put(batch)
        except Exception as error:  # raised below, once the calls in flight have ended
            fail(error)
        for _ in range(IN_FLIGHT):
            await ready.put(None)  # the senders drain the queue, so this never blocks

    async def send() -> None:
        nonlocal sent, unread
        while (batch := await ready.get()) is not None:
            if stopped.is_set() or ctx.report_pause.active:
                continue  # left pending for the next pass
            try:
                state = await submit_batch(ctx, batch)
                sent += state == BatchState.SENT
                if state == BatchState.IN_DOUBT:
                    unread += 1
                    woken.set()
            except Exception as error:  # raised below, once the others have ended
                fail(error)

    async def sending() -> None:
        await asyncio.gather(feed(), *(send() for _ in range(IN_FLIGHT)))
        finished.set()
        woken.set()

    async def read_back() -> None:
        # Beside the sending, not before it: an in-doubt batch is never sent again by a
        # pass (only pending ones are), so its read-backs (the limiter's lowest priority)
        # need not hold up the batches that are surely unsent. A batch that goes in doubt
        # during the pass is read then too: its read waits in the limiter and takes the
        # first slot no report call wants, its queries done before the last call's answer.
        nonlocal unread
        try:
            await resolve_in_doubt(ctx)
            while True:
                await woken.wait()
                woken.clear()
                if finished.is_set() or stopped.is_set() or ctx.report_pause.active:
                    return
                unread = 0
                await resolve_in_doubt(ctx)
        except Exception as error:  # raised below, once the calls in flight have ended
            fail(error)

    await asyncio.gather(read_back(), sending())
    if failures:
        raise failures[0]
    if unread and not ctx.report_pause.active:
        await resolve_in_doubt(ctx)  # now, in the window's first free slot: a row settles it
    return sent


async def _batches_to_send(ctx: TenantContext, ready_before: float
                           ) -> AsyncIterator[ReportBatchRecord]:
    """Batches formed earlier and still pending, then new ones, one at a time."""
    for batch in await ctx.store.batches(ctx.name, [BatchState.PENDING],
                                         limit=PENDING_PER_PASS):
        yield batch
    if ctx.tenant.reporting == Reporting.ENGAGEMENT_EVENTS:
        async for formed in formed_event_batches(ctx, ready_before):
            yield formed
        return
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


def metrics_item(total: MetricTotal) -> str:
    """A metrics chunk's work item: one campaign on one channel (Optimove refuses a call
    for what is wrong with one of its campaigns, so a campaign is what fails alone)."""
    return f"{total.campaign_id}/{total.channel_id}"


def _metric_chunks(groups: dict[str, list[MetricTotal]], alone: set[str]
                   ) -> list[list[MetricTotal]]:
    """Calls of at most ``MAX_METRICS_PER_CALL`` totals, never splitting a campaign
    across two calls unless it has more; the campaigns in ``alone`` get calls of their
    own (they failed before: they must not take healthy ones down with them)."""
    chunks: list[list[MetricTotal]] = []
    packed: list[MetricTotal] = []
    for item, totals in groups.items():
        if item in alone or len(totals) > MAX_METRICS_PER_CALL:
            chunks += [totals[i:i + MAX_METRICS_PER_CALL]
                       for i in range(0, len(totals), MAX_METRICS_PER_CALL)]
            continue
        if len(packed) + len(totals) > MAX_METRICS_PER_CALL:
            chunks.append(packed)
            packed = []
        packed += totals
    return [*chunks, packed] if packed else chunks


async def _send_metrics(ctx: TenantContext, part: list[MetricTotal]) -> int:
    await ctx.optimove.update_campaign_metrics([
        CampaignMetric(channel_id=t.channel_id, campaign_id=t.campaign_id,
                       template_id=t.template_id, metric_id=Metric(t.metric_id),
                       metric_value=t.value) for t in part])
    await _resume(ctx)
    await ctx.store.record_metrics_reported(ctx.name, part)
    return len(part)


async def report_metrics(ctx: TenantContext) -> int:
    """Send due running totals; totals are idempotent, so retries are safe.

    A recoverable error pauses reporting like an interaction call's. A refused call is
    split into one call per campaign, so only the campaign Optimove refuses keeps a
    failure (with its back-off, stopped after repeated refusals: see ``pipeline.work``).
    """
    if ctx.report_pause.active:
        return 0
    if ctx.tenant.reporting == Reporting.ENGAGEMENT_EVENTS \
            and not ctx.tenant.engagement_events.update_campaign_metrics:
        return 0
    due = await metrics_due(ctx.store, ctx.name, ctx.tenant, ctx.timing.metrics_refresh)
    isolation = await Isolation.load(ctx, WorkKind.METRICS)
    groups: dict[str, list[MetricTotal]] = {}
    for total in due:
        if isolation.due(metrics_item(total)):
            groups.setdefault(metrics_item(total), []).append(total)
    sent = 0
    for part in _metric_chunks(groups, set(isolation.failures)):
        items = sorted({metrics_item(t) for t in part})
        try:
            sent += await _send_metrics(ctx, part)
        except CallFailed as error:
            if not about_the_item(error):
                await _pause(ctx, error)
                return sent
            # Refused: about one (or more) of its campaigns.
            if len(items) == 1:
                await isolation.failed(items[0], error)
                continue
            for item in items:  # which campaign was refused: each on its own
                try:
                    sent += await _send_metrics(
                        ctx, [t for t in part if metrics_item(t) == item])
                except CallFailed as again:
                    if not about_the_item(again):
                        await _pause(ctx, again)
                        return sent
                    await isolation.failed(item, again)
                    continue
                await isolation.succeeded(item)
            continue
        for item in items:
            await isolation.succeeded(item)
    return sent
