"""Follow each platform campaign to DONE or ERROR (seed 003's states); whoever the
platform did not send to is reported Dropped, once."""

from __future__ import annotations

import datetime as dt

from optibridge.domain import ChannelType, Event, SendRecord, SendState, WorkKind
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.work import Isolation, run_send
from optibridge.platform.api import FINAL_STATES, CampaignState

# The events that prove the platform sent a message (SMS has no "submitted": seed 003).
SENT_EVENTS = {
    ChannelType.EMAIL: (Event.SUBMITTED,),
    ChannelType.SMS: (Event.DELIVERED, Event.BOUNCED),
}
STUCK_AFTER_SECONDS = 600.0
STUCK_SECONDS_PER_RECIPIENT = 0.01


def _due(send: SendRecord) -> float:
    return send.scheduled_time.replace(tzinfo=dt.UTC).timestamp()


def _poll_interval(ctx: TenantContext, send: SendRecord, now: float) -> float:
    age = now - (send.ready_at or now)
    return min(ctx.timing.follow_max, max(ctx.timing.follow_min, age / 4))


async def follow_send(ctx: TenantContext, send: SendRecord) -> bool:
    """Check one READY send; True when it reached its final state now."""
    assert send.platform_campaign_id is not None
    now = ctx.store.clock()
    if send.finished_at is not None:
        return await _finish(ctx, send, now)
    if _due(send) > now and send.platform_state == CampaignState.READY:
        return False  # not due yet
    if send.checked_at is not None and now - send.checked_at < _poll_interval(ctx, send, now):
        return False
    campaign = await ctx.platform.get_campaign(send.platform_campaign_id)
    finished = now if campaign.state in FINAL_STATES else None
    await ctx.store.update_send(send.id, platform_state=str(campaign.state), checked_at=now,
                                finished_at=finished)
    if finished is None and campaign.state == CampaignState.SENDING:
        await _flag_if_stuck(ctx, send, now)
    if finished is not None:
        ctx.log.info("follow.platform_finished", send=send.id, campaign=send.campaign_id,
                     state=str(campaign.state))
    return False


async def _flag_if_stuck(ctx: TenantContext, send: SendRecord, now: float) -> None:
    """Flag (log, and once per process as a problem on the status page) a campaign that
    stays SENDING far longer than its size explains."""
    expected = STUCK_AFTER_SECONDS + send.recipients * STUCK_SECONDS_PER_RECIPIENT
    started = max(send.ready_at or now, _due(send))
    if now - started <= expected:
        return
    ctx.log.warning("follow.stuck_sending", send=send.id, campaign=send.campaign_id,
                    seconds=round(now - started), recipients=send.recipients)
    if send.id not in ctx.flagged_sends:
        ctx.flagged_sends.add(send.id)
        await ctx.store.record_problem(
            ctx.name, "follow", f"send {send.id} (campaign {send.campaign_id}) has been "
            f"SENDING for {now - started:.0f} s; {expected:.0f} s would explain "
            f"{send.recipients} recipients")


# The quiet period grows with the callback lag we observe (arrival minus the callback's
# ``when``): a platform running late delays Dropped instead of causing it.
LAG_FACTOR = 2.0


# Before a send's first callback we cannot know how late the platform runs: wait this
# many quiet periods (and at least NO_CALLBACK_MIN seconds) before dropping everyone.
NO_CALLBACK_FACTOR = 4.0
NO_CALLBACK_MIN = 60.0


def quiet_needed(ctx: TenantContext, send: SendRecord, heard: bool, lag: float) -> float:
    """How long a finished send's callbacks must be quiet before its unsent recipients are
    dropped: the callback window, the margin, and twice the longest lag observed lately
    (``lag``); longer while the send has had no callback at all (``heard``)."""
    quiet = ctx.tenant.callback_window_seconds + ctx.timing.callback_margin + LAG_FACTOR * lag
    if heard or not send.recipients:
        return quiet
    return max(quiet, NO_CALLBACK_FACTOR * quiet, NO_CALLBACK_MIN)


async def _finish(ctx: TenantContext, send: SendRecord, now: float) -> bool:
    """Once the send's callbacks have been quiet long enough (``quiet_needed``), drop
    whoever got no sent event. Quiet counts from the latest of: the platform's end, the
    send's last callback, and this process's start (callbacks refused while we were down
    come back later, by the platform's retries). The drop happens only in a transaction
    that sees none of the send's callbacks waiting to be mapped."""
    assert send.finished_at is not None
    if now < ctx.quiet_until.get(send.id, 0.0):
        return False  # the quiet period found last time is not over: nothing to read yet
    last_callback = await ctx.store.last_callback_at(send.id)
    quiet_since = max(send.finished_at, last_callback or 0.0, ctx.started_at)
    lag = await ctx.store.callback_lag(ctx.name, send.id)
    heard = last_callback is not None
    quiet_until = quiet_since + quiet_needed(ctx, send, heard, lag)
    if now < quiet_until:
        # Read again when it can be over: a later callback or a longer lag only moves it
        # later; a first callback shortens it, but not to before a heard send's quiet
        # period from now.
        ctx.quiet_until[send.id] = (quiet_until if heard else
                                    min(quiet_until, now + quiet_needed(ctx, send, True, lag)))
        return False
    while await ctx.store.process_inbox(send_ids=[send.id]):
        pass  # map every callback of this send that has arrived
    dropped = await ctx.store.drop_unsent_when_mapped(
        send, SENT_EVENTS[ChannelType(send.channel_type)])
    if dropped is None:
        ctx.log.info("follow.callbacks_waiting", send=send.id, campaign=send.campaign_id)
        return False  # one is still being mapped, or waits for a retry: next pass
    final = SendState.DONE if send.platform_state == CampaignState.DONE else SendState.ERROR
    await ctx.store.update_send(send.id, state=final)
    ctx.log.info("follow.send_finished", send=send.id, campaign=send.campaign_id,
                 state=str(final), dropped=dropped)
    return True


async def follow_sends(ctx: TenantContext) -> int:
    """Follow every READY send; one that fails keeps its error (on the send and as its
    work failure, kind ``follow``) and backs off, or stops after repeated refusals, while
    the others go on."""
    isolation = await Isolation.load(ctx, WorkKind.FOLLOW)
    finished = 0
    ready = await ctx.store.sends(ctx.name, [SendState.READY])
    for send in ready:
        if isolation.due(send.id) and await run_send(isolation, send, follow_send(ctx, send)):
            finished += 1
    following = {send.id for send in ready}
    for gone in [s for s in ctx.quiet_until if s not in following]:
        del ctx.quiet_until[gone]  # finished, or cancelled: READY no more
    return finished
