"""Triggered campaigns (seed 002, second part): EventTypeID 11 calls, executed at once.

The platform sends campaigns, not single messages, so the triggers of one (campaign,
channel, template) that arrive within the tenant's ``trigger_window_seconds`` become one
platform campaign due now. A trigger is recorded before it is answered; gathering it into
a send is one transaction; execution, following and reporting are the scheduled flows'.

The payload is parsed by ``optimove.inbound``; here a parsed trigger finds its route on
the tenant's triggered channels and its template on the platform.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from optibridge.config import ChannelConfig, TenantConfig
from optibridge.domain import CampaignStage, ChannelType, NewTrigger, TriggerGroup
from optibridge.optimove.inbound import ParsedTrigger, Scalar, normalized, parse_trigger, text_value
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.entries import usable_address
from optibridge.pipeline.group_commit import GroupCommit
from optibridge.pipeline.nudges import Loop
from optibridge.platform.api import Platform
from optibridge.refusals import Refusal, Refused
from optibridge.store import Store

MAX_GATHER = 10_000  # recipients of one gathered send (one platform upload call)


def _triggered_channels(tenant: TenantConfig) -> dict[int, ChannelConfig]:
    return {cid: c for cid, c in tenant.channels.items() if c.triggered}


def resolve_route(parsed: ParsedTrigger, tenant: TenantConfig, name: str
                  ) -> tuple[int, int, ChannelConfig]:
    """(channel, template, channel config): the first route on a triggered channel."""
    triggered = _triggered_channels(tenant)
    for route in parsed.routes:
        channel_id = route.channel_id
        if channel_id is None and len(triggered) == 1:
            channel_id = next(iter(triggered))
        if channel_id is None:
            raise Refused(f"ChannelID is missing and tenant {name!r} has "
                          f"{len(triggered)} triggered channels")
        if channel_id not in triggered:
            continue
        if route.template_id is None:
            raise Refused("no template: TemplateID (or the channel's templates) is missing")
        return channel_id, route.template_id, triggered[channel_id]
    channels = ", ".join(str(r.channel_id) for r in parsed.routes)
    raise Refused(f"unknown channel: {channels} is not a triggered channel of tenant "
                  f"{name!r} (configured: {sorted(triggered) or 'none'})", Refusal.UNPROCESSABLE)


def _lookup(values: Mapping[str, Any], name: str) -> Any:
    if name in values:
        return values[name]
    wanted = normalized(name)
    return next((v for k, v in values.items() if normalized(k) == wanted), None)


def _as_field(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def contact_fields(parsed: ParsedTrigger, channel: ChannelConfig) -> dict[str, str]:
    """Every personalization value as a contact field, with the channel's defaults for
    the configured tags that are missing or empty."""
    fields = {name: _as_field(value) for name, value in parsed.personalization.items()}
    for name in channel.personalization:
        if not fields.get(name):
            fields[name] = channel.personalization_defaults.get(name, fields.get(name, ""))
    return fields


def to_new_trigger(parsed: ParsedTrigger, tenant: TenantConfig, name: str) -> NewTrigger:
    channel_id, template_id, channel = resolve_route(parsed, tenant, name)
    raw_address = _lookup(parsed.personalization, channel.address_attribute)
    if raw_address is None:
        raw_address = _lookup(parsed.top_level, channel.address_attribute)
    address = usable_address(text_value(raw_address), channel.type)
    return NewTrigger(tenant=name, campaign_id=parsed.campaign_id, channel_id=channel_id,
                      template_id=template_id, customer_id=parsed.customer_id,
                      address=address, fields=contact_fields(parsed, channel),
                      payload=parsed.raw, action_id=parsed.action_id,
                      trigger_name=parsed.trigger_name,
                      fingerprint=fingerprint(parsed, channel_id, template_id))


def fingerprint(parsed: ParsedTrigger, channel_id: int, template_id: int) -> str:
    """Equal for two triggers of the same customer, campaign, channel, template and payload
    (the payload compared as JSON: key order and spacing do not make it different)."""
    canonical = json.dumps(json.loads(parsed.raw), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    identity = json.dumps([parsed.customer_id, parsed.campaign_id, channel_id, template_id,
                           canonical], ensure_ascii=False)
    return hashlib.sha256(identity.encode()).hexdigest()


class TemplateCatalog:
    """The platform's templates per type, cached: a trigger naming a template that is not
    there refreshes the cache (at most every ``miss_refresh`` seconds) before refusing."""

    def __init__(self, platform: Platform, ttl: float = 60.0, miss_refresh: float = 2.0
                 ) -> None:
        self._platform = platform
        self._ttl = ttl
        self._miss_refresh = miss_refresh
        self._known: dict[int, ChannelType] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def _refresh(self, older_than: float) -> None:
        async with self._lock:
            if time.monotonic() - self._loaded_at < older_than:
                return  # someone refreshed it while we waited
            templates = await self._platform.list_templates()
            self._known = {t.id: t.type for t in templates}
            self._loaded_at = time.monotonic()

    async def has(self, template_id: int, channel_type: ChannelType) -> bool:
        if time.monotonic() - self._loaded_at > self._ttl:
            await self._refresh(self._ttl)
        if self._known.get(template_id) != channel_type:
            await self._refresh(self._miss_refresh)
        return self._known.get(template_id) == channel_type


class TriggerWriter(GroupCommit[NewTrigger, int]):
    """Stores triggers with group commit (see ``GroupCommit``); each gets its ID."""

    def __init__(self, store: Store, max_items: int = 2_000) -> None:
        super().__init__(store.record_triggers, max_items)

    async def write(self, item: NewTrigger) -> int:
        return await self.submit(item)


@dataclass
class TriggerIntake:
    """What the triggered endpoint needs per service: one writer, one catalog per tenant."""

    store: Store
    writer: TriggerWriter
    catalogs: dict[str, TemplateCatalog]

    @classmethod
    def for_contexts(cls, store: Store, contexts: Mapping[str, TenantContext]
                     ) -> TriggerIntake:
        return cls(store, TriggerWriter(store),
                   {name: TemplateCatalog(ctx.platform) for name, ctx in contexts.items()})

    async def accept(self, ctx: TenantContext, body: bytes) -> int:
        """Validate, check the template, record durably; the trigger's ID."""
        trigger = to_new_trigger(parse_trigger(body), ctx.tenant, ctx.name)
        channel_type = ctx.tenant.channel(trigger.channel_id).type
        if not await self.catalogs[ctx.name].has(trigger.template_id, channel_type):
            raise Refused(f"unknown template: {trigger.template_id} is not a "
                          f"{channel_type} template on the platform", Refusal.UNPROCESSABLE)
        trigger_id = await self.writer.write(trigger)
        ctx.nudges.nudge(Loop.TRIGGERED)
        return trigger_id


# --- gathering (a worker step) ------------------------------------------------------------

def _now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _due(group: TriggerGroup, now: float, window: float) -> bool:
    return group.count >= MAX_GATHER or now - group.oldest >= window


async def gather_group(ctx: TenantContext, group: TriggerGroup) -> int:
    """Make one NEW send of a group's pending triggers; the recipients it holds."""
    channel = ctx.tenant.channel(group.channel_id)
    campaign, _ = await ctx.store.open_campaign(ctx.name, group.campaign_id,
                                                group.channel_id, triggered=True)
    if campaign.stage == CampaignStage.PULLING:  # a triggered campaign has no pull
        await ctx.store.set_campaign_status(campaign.id, CampaignStage.PULLED)
    gathered = await ctx.store.gather_triggers(
        ctx.name, campaign.id, group, channel.type, _now_utc(), MAX_GATHER,
        repeat_window=ctx.tenant.trigger_repeat_seconds)
    if gathered is None:
        return 0
    ctx.log.info("triggered.gathered", campaign=group.campaign_id, channel=group.channel_id,
                 template=group.template_id, send=gathered.send_id,
                 recipients=gathered.recipients, without_address=gathered.without_address,
                 deferred=gathered.deferred, repeats=gathered.repeats)
    return gathered.recipients


async def gather_triggers(ctx: TenantContext) -> int:
    """Gather every group whose oldest trigger has waited the window (or that is full)."""
    now = ctx.store.clock()
    gathered = 0
    for group in await ctx.store.pending_trigger_groups(ctx.name):
        if _due(group, now, ctx.tenant.trigger_window_seconds):
            gathered += await gather_group(ctx, group)
    if gathered:
        ctx.nudges.nudge(Loop.EXECUTE)  # it has new sends
    return gathered


async def seconds_until_due(ctx: TenantContext) -> float | None:
    """How long until the next pending group is due; None when nothing is pending."""
    groups = await ctx.store.pending_trigger_groups(ctx.name)
    if not groups:
        return None
    now, window = ctx.store.clock(), ctx.tenant.trigger_window_seconds
    return max(0.0, min(0.0 if _due(g, now, window) else g.oldest + window - now
                        for g in groups))


async def gather_step(ctx: TenantContext) -> int:
    """The worker loop's step: wait for the next window to close, then gather."""
    wait = await seconds_until_due(ctx)
    if wait:
        await asyncio.sleep(min(wait, ctx.tenant.trigger_window_seconds))
    return await gather_triggers(ctx)
