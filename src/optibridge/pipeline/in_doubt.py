"""In-doubt report batches: learn how late Optimove's read-back is, then read each batch
back until the answer is certain. Never guess: what cannot be read back is held.

No source says how soon GetCustomerChannelInteractions shows an applied call, whether a row
stands for one call or one distinct key, or which date its range filters on. So:

- the lag is learned per tenant from batches whose 200 proved they landed (one of their
  customers is read back with back-off until it shows up), as soon as one is sent and again
  hourly while batches are sent, so it is known before a batch is ever in doubt;
- a probe is a customer with no other report of the batch's campaign, channel, template and
  event on any date, so any matching row, on any date, can only be this batch's;
- the query window covers the send date and the interaction date (a day either side);
- one row seen means landed; "not landed" needs ``probes`` agreeing empty answers read
  after the horizon (twice the learned lag, within the configured floor and ceiling).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from optibridge.domain import BatchState, InDoubtRead, LagState, ReportBatchRecord
from optibridge.optimove.errors import (
    OptimoveAuthError,
    OptimoveError,
    OptimoveUnexpectedResponse,
    UnknownShape,
)
from optibridge.optimove.models import ChannelInteraction
from optibridge.pipeline.context import TenantContext

LAG_MAX_AGE = 3600.0  # re-learn the lag this often while batches are in doubt
FIRST_SAMPLE_READ = 0.25  # seconds after a landed batch's 200 that its first read goes
SAMPLE_CANDIDATES = 5  # recently sent batches looked at for a probe customer
WHERE = "readback"


class _Unusable(Exception):
    """Read-back cannot be trusted for this tenant (the message says why)."""

    def __init__(self, kind: str, why: str) -> None:
        super().__init__(why)
        self.kind = kind  # "lag" (re-learn it first), "refused" or "shape"


class _Stop(Exception):
    """End this pass's read-backs (a transient error, or the pass's budget is spent)."""


def horizon(lag: float, floor: float, ceiling: float) -> float:
    """How long after a call an empty read-back may count as 'not landed'."""
    return min(ceiling, max(floor, 2.0 * lag))


def query_window(interaction_day: dt.date, send_day: dt.date | None
                 ) -> tuple[dt.date, dt.date]:
    """Both dates Optimove may filter on, a day either side (its days need not be UTC's)."""
    days = [interaction_day, send_day or interaction_day]
    return min(days) - dt.timedelta(days=1), max(days) + dt.timedelta(days=1)


def matching(rows: Sequence[ChannelInteraction], batch: ReportBatchRecord) -> int:
    """Rows of the batch's campaign, channel, template, event and group, on any date."""
    return sum(1 for r in rows if r.campaign_id == batch.campaign_id
               and r.channel_id == batch.channel_id and r.template_id == batch.template_id
               and r.event_id == batch.event_id
               and r.recipient_group_id == batch.recipient_group_id)


class _Reader:
    """The pass's read-back calls: at most ``budget``, each classified."""

    def __init__(self, ctx: TenantContext, budget: int) -> None:
        self.ctx = ctx
        self.left = budget
        self.answered = 0

    async def rows_for(self, batch: ReportBatchRecord, customer: str) -> int:
        if self.left <= 0:
            raise _Stop
        self.left -= 1
        start, end = query_window(batch.interaction_date,
                                  await self.ctx.store.batch_send_day(batch.id))
        try:
            rows = await self.ctx.optimove.get_customer_channel_interactions(
                customer, start, end, batch.channel_id)
        except OptimoveAuthError as error:
            raise _Unusable("refused", f"the key is refused for {error.call} "
                            f"({error.status})") from None
        except UnknownShape as error:
            raise _Unusable("shape", f"{error.call} answered rows of a shape we do not "
                            f"know ({error}); the answer as it came (see `optibridge "
                            f"interactions {customer} --json`): {error.raw[:300]}") from None
        except OptimoveUnexpectedResponse as error:
            raise _Unusable("shape", f"{error.call} answered in a shape we do not know: "
                            f"{error}") from None
        except (OptimoveError, OSError, TimeoutError) as error:
            self.ctx.log.warning("report.read_back_failed", batch=batch.id, error=str(error))
            raise _Stop from None
        self.answered += 1
        return matching(rows, batch)


async def resolve_in_doubt(ctx: TenantContext) -> int:
    """Read back what is due (a bounded number of calls); returns batches resolved."""
    lag = await ctx.store.readback_lag(ctx.name)
    now = ctx.store.clock()
    doubted = await ctx.store.in_doubt_count(ctx.name)
    if not doubted and _lag_fresh(lag, now):
        return 0
    reader = _Reader(ctx, ctx.timing.readback_per_pass)
    resolved = 0
    try:
        # The batches go first: a row seen settles one at once, whatever the lag, and
        # learning the lag would otherwise take the window's first free slot. While the
        # lag is unknown (an empty answer proves nothing yet) one call is kept for it,
        # so a crowd of in-doubt batches cannot keep it from being learned.
        batch_reads = ctx.timing.readback_per_pass - (lag.lag_seconds is None)
        if doubted and batch_reads and not _held(lag, now):
            for batch, read in await ctx.store.in_doubt_reads_due(ctx.name, now,
                                                                  batch_reads):
                resolved += await _read_batch(ctx, reader, lag, batch, read, now)
        lag = await _learn_lag(ctx, reader, lag, now)
    except _Unusable as why:
        await _mark_unusable(ctx, lag, why.kind, str(why), now,
                             retry_in=ctx.timing.in_doubt_wait)
        return resolved
    except _Stop:
        pass
    # An answer ends a refusal or an odd shape; a lag problem ends only by learning it.
    if lag.unusable is not None and lag.unusable_kind != "lag" and reader.answered:
        await _usable_again(ctx, lag)
    return resolved


async def _learn_lag(ctx: TenantContext, reader: _Reader, lag: LagState, now: float
                     ) -> LagState:
    """Advance the tenant's lag sample by at most one read; the state after it."""
    if lag.unusable is not None and (lag.retry_at or 0.0) > now:
        return lag
    if lag.sample_batch_id is None:
        if _lag_fresh(lag, now):
            return lag
        unknown = lag.lag_seconds is None or lag.unusable_kind == "lag"
        # A refresh learns only from a batch sent since the last one (an older one would
        # give a lag as long as its age); the first lesson takes what there is.
        lag = await _start_sample(ctx, lag, None if unknown else lag.learned_at)
        if lag.sample_batch_id is None:
            return lag
    if (lag.sample_next_at or 0.0) > now:
        return lag
    batch = await ctx.store.report_batch(lag.sample_batch_id)
    if batch is None or lag.sample_customer is None or lag.sample_since is None:
        lag = lag.but(sample_batch_id=None, sample_customer=None)
        await ctx.store.save_readback_lag(lag)
        return lag
    found = await reader.rows_for(batch, lag.sample_customer)
    # Counted to the answer, not to the pass's start: reads before this one in the pass
    # take time, and the row may have shown only during them (a lag too short would end
    # in-doubt horizons before a landed call can show).
    now = ctx.store.clock()
    elapsed = now - lag.sample_since
    if found:
        return await _learned(ctx, lag, elapsed, now)
    if elapsed >= ctx.timing.in_doubt_ceiling:
        cleared = lag.but(sample_batch_id=None, sample_customer=None, sample_since=None,
                          sample_next_at=None)
        return await _mark_unusable(
            ctx, cleared, "lag", f"report batch {batch.id} landed (Optimove answered 200) "
            f"but did not show in GetCustomerChannelInteractions within "
            f"{ctx.timing.in_doubt_ceiling:g} s (timing.in_doubt_ceiling)", now, retry_in=0.0)
    # Back off: each wait as long as all before it, so the lag is known within a factor 2.
    lag = lag.but(sample_next_at=now + max(FIRST_SAMPLE_READ, elapsed))
    await ctx.store.save_readback_lag(lag)
    return lag


def _held(lag: LagState, now: float) -> bool:
    """Read-back is unusable: re-learn the lag first, or wait before trying again."""
    return lag.unusable is not None and (lag.unusable_kind == "lag"
                                         or (lag.retry_at or 0.0) > now)


def _lag_fresh(lag: LagState, now: float) -> bool:
    """Learned, not in question, and recent: no sample needed now."""
    return lag.sample_batch_id is None and lag.lag_seconds is not None \
        and lag.unusable_kind != "lag" and (lag.learned_at or 0.0) >= now - LAG_MAX_AGE


async def _start_sample(ctx: TenantContext, lag: LagState, sent_after: float | None
                        ) -> LagState:
    """Read back a recently landed batch. Its lag is counted from when it was formed, a
    time before its call went out: the 200's arrival (or its write, under load) can come
    later than Optimove applied the call, and a lag counted from it could be too short."""
    candidates = [(batch, formed) for batch, formed in
                  await ctx.store.recently_sent(ctx.name, SAMPLE_CANDIDATES)
                  if sent_after is None or batch.updated_at > sent_after]
    for batch, formed in sorted(candidates, key=lambda c: c[0].updated_at - c[1]):
        customers = await ctx.store.clear_customers(batch, 1)
        if customers:
            lag = lag.but(sample_batch_id=batch.id, sample_customer=customers[0],
                          sample_since=formed,
                          sample_next_at=batch.updated_at + FIRST_SAMPLE_READ)
            await ctx.store.save_readback_lag(lag)
            return lag
    return lag


async def _learned(ctx: TenantContext, lag: LagState, elapsed: float, now: float
                   ) -> LagState:
    if lag.unusable is not None:
        await _usable_again(ctx, lag)
    lag = lag.but(lag_seconds=max(0.0, elapsed), learned_at=now, samples=lag.samples + 1,
                  sample_batch_id=None, sample_customer=None, sample_since=None,
                  sample_next_at=None, unusable=None, unusable_kind=None,
                  unusable_since=None, retry_at=None)
    await ctx.store.save_readback_lag(lag)
    ctx.log.info("report.read_back_lag", seconds=round(elapsed, 3))
    return lag


async def _usable_again(ctx: TenantContext, lag: LagState) -> None:
    ctx.log.info("report.read_back_usable_again", was=lag.unusable)
    await ctx.store.save_readback_lag(lag.but(unusable=None, unusable_kind=None,
                                              unusable_since=None, retry_at=None))
    await ctx.store.record_problem(ctx.name, WHERE, "read-back works again: in-doubt "
                                   "report batches are being resolved")


async def _mark_unusable(ctx: TenantContext, lag: LagState, kind: str, why: str, now: float,
                         *, retry_in: float) -> LagState:
    """Hold every in-doubt batch; one problem row per new reason, not one per pass."""
    if lag.unusable != why:
        ctx.log.warning("report.read_back_unusable", reason=why)
        await ctx.store.record_problem(
            ctx.name, WHERE, f"read-back unusable: {why}. In-doubt report batches are held "
            "(never guessed) until it works again, or resolve them by hand")
    lag = lag.but(unusable=why, unusable_kind=kind, unusable_since=lag.unusable_since or now,
                  retry_at=now + retry_in)
    await ctx.store.save_readback_lag(lag)
    return lag


async def _read_batch(ctx: TenantContext, reader: _Reader, lag: LagState,
                      batch: ReportBatchRecord, read: InDoubtRead, now: float) -> int:
    """One read-back of one in-doubt batch; 1 if that settled it."""
    timing = ctx.timing
    if lag.lag_seconds is None and now - read.in_doubt_since > timing.in_doubt_ceiling:
        await _batch_problem(ctx, batch, read, now, "the read-back lag could not be "
                             "learned (no batch known to have landed to read back)")
        return 0
    if batch.size == 0:  # a bug upstream, not a call that may have landed
        await ctx.store.mark_batch(batch.id, BatchState.DEAD_LETTER, expect=BatchState.IN_DOUBT,
                                   error="empty report batch", answer="empty report batch",
                                   epoch=ctx.epoch)
        return 0
    clear = await ctx.store.clear_customers(batch, max(1, timing.in_doubt_probes))
    if not clear:
        await _batch_problem(ctx, batch, read, now, "every customer of it has another report "
                             "of the same campaign, channel, template and event, so no "
                             "read-back can tell whether it landed")
        return 0
    probe = clear[read.reads % len(clear)]
    if await reader.rows_for(batch, probe):
        return await _settle(ctx, batch, True, read.reads + 1, probe)
    since = read.in_doubt_since
    if lag.lag_seconds is None:  # nothing learned yet: an empty answer proves nothing
        await ctx.store.update_in_doubt_read(
            batch.id, reads=read.reads + 1, absent=read.absent,
            next_read_at=now + timing.in_doubt_wait / max(1, timing.in_doubt_probes))
        return 0
    settled = since + horizon(lag.lag_seconds, timing.in_doubt_wait, timing.in_doubt_ceiling)
    absent = read.absent + (now >= settled)
    if absent >= timing.in_doubt_probes:
        return await _settle(ctx, batch, False, absent, probe)
    await ctx.store.record_batch_event(
        batch.id, "read_back", ctx.actor, f"read back {probe}: no row yet ("
        + ("after" if now >= settled else "before") + " the horizon)", ctx.epoch)
    if now < since + lag.lag_seconds:
        next_at = since + lag.lag_seconds  # when a landed call shows, going by the lag
    elif now < settled:
        next_at = settled
    else:  # the agreeing reads are spaced apart, not one burst
        next_at = now + timing.in_doubt_wait / max(1, timing.in_doubt_probes)
    await ctx.store.update_in_doubt_read(batch.id, reads=read.reads + 1, absent=absent,
                                         next_read_at=next_at)
    return 0


async def _settle(ctx: TenantContext, batch: ReportBatchRecord, landed: bool,
                  reads: int, customer: str) -> int:
    settled = await ctx.store.settle_in_doubt(
        [batch.id], landed, kind="read_back", actor=ctx.actor, epoch=ctx.epoch,
        detail=f"read back {customer}: " + ("a row shows, it landed" if landed else
                                            f"{reads} reads empty after the horizon"))
    await ctx.store.forget_in_doubt_read(batch.id)  # a later doubt starts afresh
    if not settled:
        return 0  # resolved meanwhile (by hand, or another pass)
    ctx.log.info("report.in_doubt_resolved", batch=batch.id, landed=landed, reads=reads)
    return 1


async def _batch_problem(ctx: TenantContext, batch: ReportBatchRecord, read: InDoubtRead,
                         now: float, why: str) -> None:
    """Hold the batch for an operator: one problem row for it, however many passes."""
    if read.problem is None:
        await ctx.store.record_problem(
            ctx.name, WHERE, f"report batch {batch.id} (campaign {batch.campaign_id}, "
            f"{batch.interaction_date}) is held in doubt: {why}. Check it in Optimove and "
            "resolve it by hand")
    await ctx.store.update_in_doubt_read(batch.id, problem=why,
                                         next_read_at=now + ctx.timing.in_doubt_ceiling)
