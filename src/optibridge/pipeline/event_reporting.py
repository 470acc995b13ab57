"""Reporting through saveEvent (Optimove's External Vendors Campaign Engagement Metrics):
the same report batches and exactly-once states as UpdateCampaignInteractions, one event
per customer. No read-back of these events is documented, so an in-doubt batch follows the
tenant's policy: held for an operator, or sent again after a configured time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

from optibridge.domain import Backend, BatchEventRow, Event, Expired, ReportBatchRecord
from optibridge.events_config import (
    MAX_AGE_DAYS,
    ContextSource,
    EngagementEventsConfig,
    InDoubtPolicy,
)
from optibridge.optimove.errors import OptimoveUnavailable
from optibridge.optimove.events import CALL, MetricEvent
from optibridge.optimove.models import METRIC_OF
from optibridge.pipeline.context import TenantContext

# An event is sent only while it is this much younger than saveEvent's 7 days, so it does
# not turn stale between forming and Optimove's check (a pause, a slow queue, clocks).
STALE_MARGIN = 3600.0
WHERE = "report"


def cutoff(now: float) -> float:
    """Events stored before this are too old to send."""
    return now - MAX_AGE_DAYS * 86_400 + STALE_MARGIN


def event_of(batch: ReportBatchRecord) -> Event:
    return next(e for e, m in METRIC_OF.items() if int(m) == batch.event_id)


def context_of(section: EngagementEventsConfig, batch: ReportBatchRecord,
               row: BatchEventRow) -> dict[str, str | int]:
    """The configured ``context`` fields of one event, each from its source."""
    event = event_of(batch)
    values: dict[ContextSource, str | int] = {
        ContextSource.CAMPAIGN_ID: batch.campaign_id,
        ContextSource.CHANNEL_ID: batch.channel_id,
        ContextSource.TEMPLATE_ID: batch.template_id,
        ContextSource.RECIPIENT_GROUP_ID: batch.recipient_group_id,
        ContextSource.SEND_TIME: row.scheduled_time.strftime("%Y-%m-%d %H:%M:%S"),
        ContextSource.SEND_ID: row.send_id,
        ContextSource.EVENT: str(event),
        ContextSource.DATE: batch.interaction_date.isoformat(),
        ContextSource.EVENT_KEY: f"{row.send_id}:{row.customer_id}:{event}:"
                                 f"{batch.interaction_date.isoformat()}",
        ContextSource.TENANT: section.tenant_id or 0,
    }
    return {name: values[source] for name, source in section.context.items()}


def metric_events(section: EngagementEventsConfig, batch: ReportBatchRecord,
                  rows: list[BatchEventRow]) -> list[MetricEvent]:
    """The batch's events as saveEvent takes them; ValueError when its event has no name
    any more (the batch becomes a dead letter: fix the name, then requeue it)."""
    event = event_of(batch)
    name = section.events.name_of(str(event))
    if name is None:
        raise ValueError(f"engagement_events.events.{event} is empty: {event} is not sent "
                         "(set a name and requeue the batch)")
    return [MetricEvent(name, row.customer_id,
                        dt.datetime.fromtimestamp(row.stored_at, dt.UTC),
                        context_of(section, batch, row)) for row in rows]


async def sendable(ctx: TenantContext, batch: ReportBatchRecord) -> bool:
    """A saveEvent batch waits, pending, while the tenant has no token (say it switched
    back to interactions and dropped it): one problem row, and no pause, so the tenant's
    other batches go on."""
    if ctx.events is not None:
        return True
    if not ctx.waiting_for_token:
        ctx.waiting_for_token = True
        await ctx.store.record_problem(
            ctx.name, WHERE, "saveEvent report batches wait, pending: the tenant has no "
            "saveEvent token (set engagement_events.token_env and export it)",
            key="no-save-event-token")
    return False


async def save_batch(ctx: TenantContext, batch: ReportBatchRecord) -> int:
    """Send one batch's events in one saveEvent call; the number sent. Raises what the
    client raises (``OptimoveOutcomeUnknown`` when it may have landed)."""
    if ctx.events is None:  # sendable() is asked first; a token gone meanwhile
        raise OptimoveUnavailable(CALL, "no saveEvent token for this tenant: set "
                                  "engagement_events.token_env (the batch waits, pending)")
    section = ctx.tenant.engagement_events
    events = metric_events(section, batch, await ctx.store.batch_event_rows(batch.id))
    await ctx.events.save_events(events, max(section.batch_size, len(events)))
    return len(events)


async def note_expired(ctx: TenantContext, expired: Expired) -> None:
    ctx.log.warning("report.events_expired", batch=expired.batch_id, count=expired.count,
                    campaign=expired.campaign_id, event_name=str(expired.event))
    await ctx.store.record_problem(
        ctx.name, WHERE, f"{expired.count:,} {expired.event} events of campaign "
        f"{expired.campaign_id} ({expired.day}) are older than {MAX_AGE_DAYS} days and were "
        f"not sent to saveEvent (set aside in expired report batch {expired.batch_id})")


async def still_fresh(ctx: TenantContext, batch: ReportBatchRecord) -> bool:
    """Set a pending batch's too-old events aside first; False when none is left."""
    expired = await ctx.store.expire_stale_events(batch, cutoff(ctx.store.clock()))
    if expired is None:
        return True
    await note_expired(ctx, expired)
    return expired.batch_id != batch.id


async def formed_event_batches(ctx: TenantContext, ready_before: float
                               ) -> AsyncIterator[ReportBatchRecord]:
    """New saveEvent batches of the events that have a name, too-old ones set aside."""
    section = ctx.tenant.engagement_events
    events = [e for e in Event if section.events.name_of(str(e))]
    now = ctx.store.clock()
    sends_since = now - (ctx.tenant.report_days + MAX_AGE_DAYS) * 86_400
    async for item in ctx.store.formed_event_batches(
            ctx.name, events, ready_before, section.batch_size, cutoff(now), sends_since):
        if isinstance(item, Expired):
            await note_expired(ctx, item)
        else:
            yield item


async def settle_event_doubts(ctx: TenantContext) -> int:
    """Apply the tenant's in-doubt policy to its saveEvent batches; returns those sent
    again. ``hold``: one problem row per batch, until an operator resolves it."""
    section = ctx.tenant.engagement_events
    now = ctx.store.clock()
    resent = 0
    for batch in await ctx.store.in_doubt_event_batches(ctx.name):
        if section.in_doubt == InDoubtPolicy.RESEND_AFTER:
            if now - batch.updated_at < section.resend_after_seconds:
                continue
            resent += len(await ctx.store.settle_in_doubt(
                [batch.id], False, kind="policy", actor=ctx.actor, epoch=ctx.epoch,
                detail=f"in-doubt policy resend_after: {section.resend_after_seconds:g} s "
                       "passed, sent again"))
            continue
        doubt = (batch.id, batch.updated_at)  # this doubt: a later one is told again
        if doubt in ctx.held_batches:
            continue
        ctx.held_batches.add(doubt)
        await ctx.store.record_problem(
            ctx.name, WHERE, f"report batch {batch.id} (saveEvent, campaign "
            f"{batch.campaign_id}, {event_of(batch)}, {batch.interaction_date}, "
            f"{batch.size:,} events) is held in doubt: saveEvent has no read-back. Check "
            "Optimove, then `optibridge batches resolve "
            f"{batch.id} --landed` or `--not-landed`", key=f"held:{batch.id}")
    return resent


def is_event_batch(batch: ReportBatchRecord) -> bool:
    return batch.backend == Backend.ENGAGEMENT_EVENTS



