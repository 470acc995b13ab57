"""Flow 5: execute each send as one platform campaign, one recorded step at a time.

Every step records its result before the next, so a crash resumes where it stopped:
list created -> recipients uploaded -> campaign created (DRAFT) -> payload -> READY.
Each create is recorded before it is made (``pipeline/leftovers.py``): one whose answer is
lost is made again under a new name, and the sweep deletes what the lost one made.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections import deque
from collections.abc import Awaitable, Callable

from optibridge.domain import (
    ChannelType,
    FieldsJson,
    Made,
    RecipientRow,
    SendRecord,
    SendState,
    WorkKind,
)
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.leftovers import create_once, discard_orphan, sweep_leftovers
from optibridge.pipeline.work import Isolation, run_send
from optibridge.platform.api import CampaignState, Contact, ImportResult
from optibridge.platform.errors import (
    PlatformAuthError,
    PlatformNotFound,
    PlatformRequestRejected,
)

UPLOAD_CHUNK = 10_000
UPLOADS_IN_FLIGHT = 2


def send_name(ctx: TenantContext, send: SendRecord) -> str:
    return (f"optibridge {ctx.name} campaign {send.campaign_id} channel {send.channel_id} "
            f"send {send.id}")


def to_contact(channel_type: ChannelType, address: str, fields: FieldsJson) -> Contact:
    if channel_type == ChannelType.EMAIL:
        return Contact(address, None, fields)
    return Contact(None, address, fields)


async def execute_send(ctx: TenantContext, send: SendRecord) -> SendState:
    """Advance one send as far as it goes; returns the state it reached.

    Each step is recorded only if the send is still where we left it (``advance_send``): a
    cancellation that came in meanwhile wins, and what we just created is removed.
    """
    state = send.state
    if state == SendState.NEW:
        send = await _make_list(ctx, send)
        state = send.state
    if state == SendState.LISTED:
        await upload_recipients(ctx, send)
        if not await ctx.store.advance_send(send.id, SendState.LISTED,
                                            state=SendState.UPLOADED):
            return await _current(ctx, send)
        state = SendState.UPLOADED
    if state == SendState.CREATED:
        # Resumed between creating the campaign and recording its payload: we cannot tell
        # whether the payload was attached, and a second one would send twice. The campaign
        # is a DRAFT, so nothing was sent: delete it and start the campaign step again.
        assert send.platform_campaign_id is not None
        await _forget(ctx.platform.delete_campaign(send.platform_campaign_id))
        if not await ctx.store.advance_send(send.id, SendState.CREATED,
                                            state=SendState.UPLOADED, platform_campaign_id=None):
            return await _current(ctx, send)
        state = SendState.UPLOADED
    if state == SendState.UPLOADED:
        return await _create_and_ready(ctx, await _reload(ctx, send))
    if state == SendState.PAYLOAD:
        return await _make_ready(ctx, send)
    return state


async def _make_list(ctx: TenantContext, send: SendRecord) -> SendRecord:
    """NEW -> LISTED: the send's contact list, made once; the send as it is after."""
    made, list_id = await create_once(ctx, send, Made.LIST, send_name(ctx, send),
                                      ctx.platform.create_list)
    if not await ctx.store.create_answered(made.id, list_id, send.id, SendState.NEW,
                                           state=SendState.LISTED, list_id=list_id):
        await discard_orphan(ctx, made, list_id)
    return await _reload(ctx, send)


async def upload_while_pulling(ctx: TenantContext, send: SendRecord) -> int:
    """A send of a campaign still being pulled: make its list and upload the recipients
    stored so far; 1 if it did either, else 0.

    The send stays LISTED: seed 003 sends a READY campaign to its list's contacts, so the
    campaign is made and started only once the pull is done and the list complete
    (``execute_send``, which uploads the rest from the recorded point). What is uploaded
    here is recorded chunk by chunk as in ``upload_recipients``, so a crash repeats at
    most the chunks in flight, and a contact uploaded again only has its fields updated.
    """
    did = 0
    if send.state == SendState.NEW:
        send, did = await _make_list(ctx, send), 1
    if send.state == SendState.LISTED:
        # One chunk at a time: the pull goes on beside it, and what the service holds at
        # once (pages, chunks, callbacks of sends already started) stays bounded.
        did |= bool(await upload_recipients(ctx, send, in_flight=1,
                                            go_on=_after_the_pages(ctx, send)))
    return did


def _after_the_pages(ctx: TenantContext, send: SendRecord) -> Callable[[], Awaitable[bool]]:
    """Before each chunk beside a pull: wait while one of the campaign's pages is being
    stored (``PullFirst``), but no more than an idle period in all, so that the rest of
    the execute pass (due and triggered sends) is held up no longer than a pause; then
    stop, and the next pass goes on from the recorded point."""
    loop = asyncio.get_running_loop()
    left = ctx.timing.idle

    async def go_on() -> bool:
        nonlocal left
        if not ctx.pull_first.busy(send.campaign_pk):
            return True
        started = loop.time()
        try:
            await asyncio.wait_for(ctx.pull_first.wait(send.campaign_pk), left)
        except TimeoutError:
            return False
        finally:
            left -= loop.time() - started
        return True

    return go_on


async def _forget(deletion: Awaitable[None]) -> None:
    """Delete something of ours on the platform; already gone is as good as deleted."""
    with contextlib.suppress(PlatformNotFound):
        await deletion


async def _current(ctx: TenantContext, send: SendRecord) -> SendState:
    return (await _reload(ctx, send)).state


async def _reload(ctx: TenantContext, send: SendRecord) -> SendRecord:
    fresh = await ctx.store.get_send(send.id)
    assert fresh is not None
    return fresh


async def upload_recipients(ctx: TenantContext, send: SendRecord,
                            in_flight: int = UPLOADS_IN_FLIGHT,
                            go_on: Callable[[], Awaitable[bool]] | None = None) -> int:
    """Upload recipients after the recorded point; refused ones become Dropped; returns
    how many were uploaded.

    A pipeline of ``UPLOADS_IN_FLIGHT`` chunks: the next chunk is read and sent while the
    platform imports this one, so the upload runs at the slower side's pace instead of at
    the sum of both. The upload point is recorded in order and only for chunks the platform
    confirmed; a chunk sent again after a crash only updates its contacts (seed 003).
    ``go_on``: awaited before each chunk is sent; False stops the upload there (what is
    in flight is still recorded), to be taken up again from the point.
    """
    with ctx.pull_first.under_way():  # mapping yields to it meanwhile
        return await _upload(ctx, send, in_flight, go_on)


async def _upload(ctx: TenantContext, send: SendRecord, in_flight: int,
                  go_on: Callable[[], Awaitable[bool]] | None) -> int:
    assert send.list_id is not None
    list_id, channel_type = send.list_id, send.channel_type
    uploads: deque[tuple[list[RecipientRow], asyncio.Task[ImportResult]]] = deque()
    uploaded = 0

    def read_after(point: int) -> asyncio.Task[list[RecipientRow]]:
        return asyncio.create_task(ctx.store.recipients_to_upload(send.id, point, UPLOAD_CHUNK))

    async def record_oldest() -> None:
        nonlocal uploaded
        rows, upload = uploads.popleft()
        result = await upload
        rejected = [(rows[r.index].customer_id, r.error) for r in result.rejected]
        if rejected:
            ctx.log.warning("execution.contacts_rejected", send=send.id,
                            count=len(rejected), first_error=rejected[0][1])
        await ctx.store.mark_uploaded(send, rows[-1].id, rejected)
        uploaded += len(rows)

    following = read_after(send.uploaded_through)
    try:
        while rows := await following:
            if go_on is not None and not await go_on():
                break
            following = read_after(rows[-1].id)
            contacts = [to_contact(channel_type, r.address or "", r.fields) for r in rows]
            uploads.append((rows, asyncio.create_task(
                ctx.platform.add_contacts(list_id, contacts))))
            if len(uploads) >= in_flight:
                await record_oldest()
        while uploads:
            await record_oldest()
    finally:
        for task in (following, *(upload for _, upload in uploads)):
            task.cancel()
    return uploaded


async def _create_and_ready(ctx: TenantContext, send: SendRecord) -> SendState:
    list_id = send.list_id
    assert list_id is not None
    when = send.scheduled_time.replace(tzinfo=dt.UTC)
    callback = ctx.signer.callback_url(ctx.name, send.id)
    made, campaign = await create_once(
        ctx, send, Made.CAMPAIGN, send_name(ctx, send),
        lambda name: ctx.platform.create_campaign(name, list_id, when, callback))
    if not await ctx.store.create_answered(made.id, campaign.id, send.id, SendState.UPLOADED,
                                           state=SendState.CREATED,
                                           platform_campaign_id=campaign.id,
                                           platform_state=str(campaign.state)):
        await discard_orphan(ctx, made, campaign.id)
        return await _current(ctx, send)
    try:
        await ctx.platform.attach_payload(campaign.id, send.channel_type,
                                          send.template_id)
    except (PlatformRequestRejected, PlatformAuthError):
        # Refused, so certainly not attached: remove the DRAFT now rather than leave it
        # for the next try (which would make another one).
        await _forget(ctx.platform.delete_campaign(campaign.id))
        await ctx.store.advance_send(send.id, SendState.CREATED, state=SendState.UPLOADED,
                                     platform_campaign_id=None, platform_state=None)
        raise
    if not await ctx.store.advance_send(send.id, SendState.CREATED, state=SendState.PAYLOAD):
        await _forget(ctx.platform.delete_campaign(campaign.id))
        return await _current(ctx, send)
    return await _make_ready(ctx, await _reload(ctx, send))


async def _make_ready(ctx: TenantContext, send: SendRecord) -> SendState:
    assert send.platform_campaign_id is not None
    async with ctx.send_lock:
        fresh = await _reload(ctx, send)
        if fresh.state == SendState.CANCELLED:
            await _forget(ctx.platform.delete_campaign(send.platform_campaign_id))
            return SendState.CANCELLED
        if fresh.state != SendState.PAYLOAD:
            return fresh.state
        try:
            current = await ctx.platform.get_campaign(send.platform_campaign_id)
        except PlatformNotFound:
            # Deleted behind our back before it was READY: nothing was sent; start over.
            await ctx.store.advance_send(send.id, SendState.PAYLOAD, state=SendState.UPLOADED,
                                         platform_campaign_id=None)
            return SendState.UPLOADED
        # Seed 003: DRAFT <-> SCHEDULED <-> READY, so a draft goes through SCHEDULED.
        for step in (CampaignState.SCHEDULED, CampaignState.READY):
            if current.state in (CampaignState.DRAFT, CampaignState.SCHEDULED):
                current = await ctx.platform.move_campaign(
                    send.platform_campaign_id, step, current=current.state)
        await ctx.store.advance_send(send.id, SendState.PAYLOAD, state=SendState.READY,
                                     platform_state=str(current.state),
                                     ready_at=ctx.store.clock())
    ctx.log.info("execution.ready", send=send.id, campaign=send.campaign_id,
                 platform_campaign=send.platform_campaign_id, recipients=send.recipients)
    return SendState.READY


async def execute_pending_sends(ctx: TenantContext) -> int:
    """Advance every unfinished send of live campaigns that is due, and upload what the
    pulls still under way have stored so far (``upload_while_pulling``); a send that fails
    keeps its error (on the send and as its work failure) and backs off, or stops after
    repeated refusals, without holding up the others. What lost answers left on the
    platform is swept first."""
    swept = await sweep_leftovers(ctx)
    states = [SendState.NEW, SendState.LISTED, SendState.UPLOADED, SendState.CREATED,
              SendState.PAYLOAD]
    sends = await ctx.store.sends(ctx.name, states, live_only=True)
    isolation = await Isolation.load(ctx, WorkKind.SEND)
    advanced = 0
    for send in sends:
        if isolation.due(send.id) and await run_send(isolation, send,
                                                     execute_send(ctx, send)) is not None:
            advanced += 1
    # Read after the sends above: a campaign whose pull ended meanwhile is in neither list
    # (its sends are taken up by the next pass), never in both.
    pulling = await ctx.store.sends_being_pulled(ctx.name, [SendState.NEW, SendState.LISTED])
    for send in pulling:
        if isolation.due(send.id):
            advanced += await run_send(isolation, send, upload_while_pulling(ctx, send)) or 0
    return advanced + swept
