"""Flow 4: pull a campaign's audience page by page into the store, resumable."""

from __future__ import annotations

import re
from collections.abc import Sequence

from optibridge.config import ChannelConfig
from optibridge.domain import AudienceEntry, CampaignRecord, ChannelType
from optibridge.optimove.models import CustomerSendDetail
from optibridge.pipeline.context import TenantContext

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def usable_address(value: str | None, channel_type: ChannelType) -> str | None:
    """The address normalized for the platform, or None when it cannot receive."""
    if value is None:
        return None
    value = value.strip()
    if channel_type == ChannelType.EMAIL:
        return value.lower() if len(value) <= 320 and _EMAIL.match(value) else None
    compact = re.sub(r"[\s()-]", "", value)
    return compact if _E164.match(compact) else None


def requested_attributes(channel: ChannelConfig) -> list[str]:
    """The address attribute first, then the personalization tags (seed 002)."""
    return [channel.address_attribute,
            *(name for name in channel.personalization if name != channel.address_attribute)]


class EntryMaker:
    """Turns one channel's audience rows into entries; where each attribute sits in a row
    is worked out once per pull, not once per row."""

    def __init__(self, channel: ChannelConfig, names: Sequence[str]) -> None:
        self.channel_type = channel.type
        self.address_at = names.index(channel.address_attribute)
        defaults = channel.personalization_defaults
        self.fields = [(name, names.index(name), defaults.get(name, ""))
                       for name in channel.personalization]

    def __call__(self, row: CustomerSendDetail) -> AudienceEntry:
        values = row.attributes
        return AudienceEntry(row.customer_id, row.template_id, row.scheduled_time,
                             usable_address(values[self.address_at], self.channel_type),
                             {name: values[at] or default for name, at, default in self.fields})


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
    pages = ctx.optimove.iter_customer_send_details(
        campaign.campaign_id, campaign.channel_id, attributes=names,
        delimiter=ctx.tenant.attribute_delimiter, page_size=page_size,
        start_skip=campaign.next_skip)
    async for page in pages:
        entries = [to_entry(row) for row in page.rows]
        last = len(page.rows) < page_size
        if not await ctx.store.store_audience_page(campaign.id, channel.type, page.skip,
                                                   entries, last):
            ctx.log.info("audience.stopped", campaign=campaign.campaign_id, skip=page.skip)
            return stored
        stored, skip = stored + len(entries), page.skip + len(entries)
        if last:
            break
    else:
        # The audience ended on a full page: the empty page after it closes the pull.
        await ctx.store.store_audience_page(campaign.id, channel.type, skip, [], True)
    ctx.log.info("audience.pulled", campaign=campaign.campaign_id,
                 channel=campaign.channel_id, customers=stored)
    return stored
