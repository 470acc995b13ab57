"""Flow 5: execute each send as one platform campaign, one recorded step at a time.

Every step records its result before the next, so a crash resumes where it stopped:
list created -> recipients uploaded -> campaign created (DRAFT) -> payload -> READY.
"""

from __future__ import annotations

import datetime as dt

from optibridge.config import ChannelType
from optibridge.domain import SendRecord, SendState
from optibridge.pipeline.context import TenantContext
from optibridge.platform.api import CampaignState, Contact

UPLOAD_CHUNK = 10_000


def send_name(ctx: TenantContext, send: SendRecord) -> str:
    return (f"optibridge {ctx.name} campaign {send.campaign_id} channel {send.channel_id} "
            f"send {send.id}")


def to_contact(channel_type: ChannelType, address: str, fields: dict[str, str]) -> Contact:
    if channel_type == ChannelType.EMAIL:
        return Contact(email=address, fields=fields)
    return Contact(telephone=address, fields=fields)


async def execute_send(ctx: TenantContext, send: SendRecord) -> SendState:
    """Advance one send as far as it goes; returns the state it reached."""
    state = send.state
    if state == SendState.NEW:
        list_id = await ctx.platform.create_list(send_name(ctx, send))
        await ctx.store.update_send(send.id, state=SendState.LISTED, list_id=list_id)
        send, state = await _reload(ctx, send), SendState.LISTED
    if state == SendState.LISTED:
        await upload_recipients(ctx, send)
        await ctx.store.update_send(send.id, state=SendState.UPLOADED)
        state = SendState.UPLOADED
    if state == SendState.CREATED:
        # Resumed between creating the campaign and recording its payload: we cannot tell
        # whether the payload was attached, and a second one would send twice. The campaign
        # is a DRAFT, so nothing was sent: delete it and start the campaign step again.
        assert send.platform_campaign_id is not None
        await ctx.platform.delete_campaign(send.platform_campaign_id)
        await ctx.store.update_send(send.id, state=SendState.UPLOADED, platform_campaign_id=None)
        state = SendState.UPLOADED
    if state == SendState.UPLOADED:
        return await _create_and_ready(ctx, await _reload(ctx, send))
    if state == SendState.PAYLOAD:
        return await _make_ready(ctx, send)
    return state


async def _reload(ctx: TenantContext, send: SendRecord) -> SendRecord:
    fresh = await ctx.store.get_send(send.id)
    assert fresh is not None
    return fresh


async def upload_recipients(ctx: TenantContext, send: SendRecord) -> None:
    """Upload recipients after the recorded point; refused ones become Dropped."""
    assert send.list_id is not None
    channel_type = ChannelType(send.channel_type)
    after = send.uploaded_through
    while True:
        rows = await ctx.store.recipients_to_upload(send.id, after, UPLOAD_CHUNK)
        if not rows:
            return
        contacts = [to_contact(channel_type, r.address or "", dict(r.fields)) for r in rows]
        result = await ctx.platform.add_contacts(send.list_id, contacts)
        rejected = [(rows[r.index].customer_id, r.error) for r in result.rejected]
        if rejected:
            ctx.log.warning("execution.contacts_rejected", send=send.id, count=len(rejected),
                            first_error=rejected[0][1])
        after = rows[-1].id
        await ctx.store.mark_uploaded(send, after, rejected)


async def _create_and_ready(ctx: TenantContext, send: SendRecord) -> SendState:
    assert send.list_id is not None
    when = send.scheduled_time.replace(tzinfo=dt.UTC)
    campaign = await ctx.platform.create_campaign(
        send_name(ctx, send), send.list_id, when, ctx.signer.callback_url(ctx.name, send.id))
    await ctx.store.update_send(send.id, state=SendState.CREATED,
                                platform_campaign_id=campaign.id,
                                platform_state=str(campaign.state))
    await ctx.platform.attach_payload(campaign.id, ChannelType(send.channel_type),
                                      send.template_id)
    await ctx.store.update_send(send.id, state=SendState.PAYLOAD)
    return await _make_ready(ctx, await _reload(ctx, send))


async def _make_ready(ctx: TenantContext, send: SendRecord) -> SendState:
    assert send.platform_campaign_id is not None
    async with ctx.send_lock:
        fresh = await _reload(ctx, send)
        if fresh.state == SendState.CANCELLED:
            await ctx.platform.delete_campaign(send.platform_campaign_id)
            return SendState.CANCELLED
        current = await ctx.platform.get_campaign(send.platform_campaign_id)
        # Seed 003: DRAFT <-> SCHEDULED <-> READY, so a draft goes through SCHEDULED.
        for step in (CampaignState.SCHEDULED, CampaignState.READY):
            if current.state in (CampaignState.DRAFT, CampaignState.SCHEDULED):
                current = await ctx.platform.move_campaign(
                    send.platform_campaign_id, step, current=current.state)
        await ctx.store.update_send(send.id, state=SendState.READY,
                                    platform_state=str(current.state),
                                    ready_at=ctx.store.clock())
    ctx.log.info("execution.ready", send=send.id, campaign=send.campaign_id,
                 platform_campaign=send.platform_campaign_id, recipients=send.recipients)
    return SendState.READY


async def execute_pending_sends(ctx: TenantContext) -> int:
    states = [SendState.NEW, SendState.LISTED, SendState.UPLOADED, SendState.CREATED,
              SendState.PAYLOAD]
    sends = await ctx.store.sends(ctx.name, states)
    for send in sends:
        await execute_send(ctx, send)
    return len(sends)
