"""EventTypeID 4: cancel what has not been sent yet."""

from __future__ import annotations

from optibridge.domain import CampaignStage, SendState
from optibridge.pipeline.context import TenantContext
from optibridge.platform.api import CampaignState
from optibridge.platform.errors import PlatformError, PlatformNotFound

UNSENT = [SendState.NEW, SendState.LISTED, SendState.UPLOADED, SendState.CREATED,
          SendState.PAYLOAD, SendState.READY]


async def cancel_campaign(ctx: TenantContext, campaign_id: int, channel_id: int) -> str:
    campaign = await ctx.store.get_campaign(ctx.name, campaign_id, channel_id)
    if campaign is None:
        # Cancelled before we heard of it: remember, so a late "ready" starts nothing.
        campaign, _ = await ctx.store.open_campaign(ctx.name, campaign_id, channel_id)
    await ctx.store.set_campaign_status(campaign.id, CampaignStage.CANCELLED)
    cancelled, sending = 0, 0
    async with ctx.send_lock:
        for send in await ctx.store.sends(ctx.name, UNSENT, campaign_pk=campaign.id):
            if send.platform_campaign_id is not None and not await _withdraw(ctx, send.
                                                                             platform_campaign_id):
                sending += 1
                continue
            await ctx.store.update_send(send.id, state=SendState.CANCELLED)
            cancelled += 1
    ctx.log.info("campaign.cancelled", campaign=campaign_id, channel=channel_id,
                 sends_cancelled=cancelled, sends_already_sending=sending)
    return f"campaign {campaign_id} channel {channel_id}: cancelled {cancelled} sends" + (
        f", {sending} already sending" if sending else "")


async def _withdraw(ctx: TenantContext, platform_campaign_id: int) -> bool:
    """Take a platform campaign out of READY and delete it; False if it is sending.

    A campaign the platform no longer knows (404) cannot send: it is as good as withdrawn.
    """
    try:
        campaign = await ctx.platform.get_campaign(platform_campaign_id)
    except PlatformNotFound:
        return True
    if campaign.state in (CampaignState.SENDING, CampaignState.DONE, CampaignState.ERROR):
        return False
    try:
        if campaign.state == CampaignState.READY:
            await ctx.platform.move_campaign(platform_campaign_id, CampaignState.SCHEDULED,
                                             current=CampaignState.READY)
        await ctx.platform.delete_campaign(platform_campaign_id)
    except PlatformNotFound:
        return True
    except PlatformError as error:
        ctx.log.warning("campaign.cancel_failed", platform_campaign=platform_campaign_id,
                        error=str(error))
        try:
            again = await ctx.platform.get_campaign(platform_campaign_id)
        except PlatformNotFound:
            return True
        return again.state not in (CampaignState.SENDING, CampaignState.DONE,
                                   CampaignState.ERROR)
    return True
