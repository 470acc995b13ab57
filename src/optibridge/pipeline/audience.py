"""Flow 4: pull a campaign's audience page by page into the store, resumable."""

from __future__ import annotations

from optibridge.domain import AudiencePage, CampaignRecord
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.entries import EntryMaker, decode_entries, requested_attributes


def pull_item(campaign: CampaignRecord) -> str:
    """How a pull is named among the work items (and in ``optibridge work``)."""
    return f"{campaign.campaign_id}/{campaign.channel_id}"


async def pull_audience(ctx: TenantContext, campaign: CampaignRecord) -> int:
    """Pull from the stored resume point to the end; returns the customers stored."""
    channel = ctx.tenant.channel(campaign.channel_id)
    names = requested_attributes(channel)
    to_entry = EntryMaker(channel, names)
    page_size = ctx.tenant.page_size
    stored, skip = 0, campaign.next_skip
    delimiter = ctx.tenant.attribute_delimiter

    async def decode(body: bytes, count: int, delimiter: str) -> AudiencePage:
        # In a decoding process when the service has one: the loop stores meanwhile.
        return await ctx.offload.run(decode_entries, body, count, delimiter, to_entry)

    pages = ctx.optimove.iter_send_details_pages(
        campaign.campaign_id, campaign.channel_id, decode, attributes=names,
        delimiter=delimiter, page_size=page_size, start_skip=campaign.next_skip)
    with ctx.pull_first.under_way():  # mapping yields to it meanwhile
        async for page_skip, entries in pages:
            last = len(entries) < page_size
            with ctx.pull_first.storing(campaign.id):
                kept = await ctx.store.store_audience_page(
                    campaign.id, channel.type, page_skip, entries, last)
            if not kept:
                ctx.log.info("audience.stopped", campaign=campaign.campaign_id,
                             skip=page_skip)
                return stored
            stored, skip = stored + len(entries), page_skip + len(entries)
            if last:
                break
        else:
            # The audience ended on a full page: the empty page after it closes the pull.
            await ctx.store.store_audience_page(campaign.id, channel.type, skip, [], True)
    ctx.log.info("audience.pulled", campaign=campaign.campaign_id,
                 channel=campaign.channel_id, customers=stored)
    return stored
