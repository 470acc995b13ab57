"""Flows 1 and 3: register the listener, record Optimove's notifications, act on them."""

from __future__ import annotations

from dataclasses import dataclass

from optibridge.config import Config
from optibridge.domain import CampaignStage, NotificationRecord, WorkKind
from optibridge.optimove.client import OptimoveClient
from optibridge.optimove.inbound import Notification
from optibridge.optimove.models import EventType
from optibridge.pipeline.cancel import cancel_campaign
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.engagement import open_engagement_campaign
from optibridge.pipeline.work import Isolation
from optibridge.store import Store

SCHEDULED_EVENTS = (EventType.CHANNEL_EXECUTED, EventType.CAMPAIGN_PROCESSED,
                    EventType.CAMPAIGN_CANCELED)


def listener_url(config: Config, tenant: str) -> str:
    return f"{config.server.public_url}/listener/{tenant}/{config.listener_token(tenant)}"


async def record_notification(store: Store, tenant: str, notification: Notification) -> int:
    """Durably record a notification; the listener answers only after this returns."""
    return await store.record_notification(tenant, notification.event_type,
                                           notification.campaign_id, notification.channel_id,
                                           notification.payload)


def _channels_of(ctx: TenantContext, channel_id: int | None) -> list[int]:
    if channel_id is not None:
        return [channel_id]
    return [cid for cid, channel in ctx.tenant.channels.items() if not channel.triggered]


def pulls_on_13(ctx: TenantContext, channel_id: int) -> bool:
    """Whether EventTypeID 13 is registered for the channel (``listeners register``
    registers it on every scheduled channel): then only 13 starts its pull, because only
    13 says that this channel's send details are complete; EventTypeID 1 says that at
    least one channel of the campaign is."""
    channel = ctx.tenant.channels.get(channel_id)
    return (channel is not None and not channel.triggered
            and EventType.CHANNEL_EXECUTED in SCHEDULED_EVENTS)


async def handle_notification(ctx: TenantContext, note: NotificationRecord) -> str:
    """Act on one recorded notification; repeating it starts nothing twice."""
    if note.event_type == EventType.ENGAGEMENT_FILES:
        return await open_engagement_campaign(ctx, note)
    if note.campaign_id is None or note.event_type not in SCHEDULED_EVENTS:
        return f"ignored EventTypeID {note.event_type}"
    outcomes = []
    for channel_id in _channels_of(ctx, note.channel_id):
        if channel_id not in ctx.tenant.channels or ctx.tenant.channels[channel_id].triggered:
            outcomes.append(f"channel {channel_id} is not a configured scheduled channel")
            continue
        if note.event_type == EventType.CAMPAIGN_CANCELED:
            outcomes.append(await cancel_campaign(ctx, note.campaign_id, channel_id))
            continue
        if note.event_type == EventType.CAMPAIGN_PROCESSED and pulls_on_13(ctx, channel_id):
            outcomes.append(f"campaign {note.campaign_id} channel {channel_id}: "
                            "waits for its EventTypeID 13")
            continue
        campaign, created = await ctx.store.open_campaign(ctx.name, note.campaign_id,
                                                          channel_id)
        if created:
            ctx.log.info("campaign.opened", campaign=note.campaign_id, channel=channel_id)
        state = "started" if created else f"already {campaign.stage}"
        if campaign.stage == CampaignStage.CANCELLED:
            state = "cancelled before"
        outcomes.append(f"campaign {note.campaign_id} channel {channel_id}: {state}")
    return "; ".join(outcomes)


def work_kind(note: NotificationRecord) -> WorkKind:
    if note.event_type == EventType.CAMPAIGN_CANCELED:
        return WorkKind.CANCELLATION
    return WorkKind.NOTIFICATION


async def handle_pending_notifications(ctx: TenantContext) -> int:
    """Act on each recorded notification in arrival order; one that fails is kept on its
    own (with its back-off, see ``pipeline.work``) and the later ones go on."""
    isolations = {kind: await Isolation.load(ctx, kind)
                  for kind in (WorkKind.NOTIFICATION, WorkKind.CANCELLATION)}
    waiting = [int(item) for isolation in isolations.values() for item in isolation.waiting()]
    notes = await ctx.store.pending_notifications(ctx.name, excluding=waiting)
    handled = 0
    for note in notes:
        isolation = isolations[work_kind(note)]
        outcome = await isolation.run(note.id, handle_notification(ctx, note),
                                      campaign=note.campaign_id, event_type=note.event_type)
        if outcome is not None:
            await ctx.store.mark_notification(note.id, outcome)
            handled += 1
    return handled


def triggered_listener_url(config: Config, tenant: str) -> str:
    return f"{config.server.public_url}/triggered/{tenant}/{config.listener_token(tenant)}"


@dataclass(frozen=True)
class ListenerRegistration:
    event_type: int
    channel_id: int
    url: str


def wanted_listeners(config: Config, tenant: str) -> list[ListenerRegistration]:
    """Flow 1: 13 (and 1, and 4 for cancellations) per scheduled channel; 11 on the
    tenant's dedicated triggered channel."""
    wanted = []
    for channel_id, channel in config.tenant(tenant).channels.items():
        if channel.triggered:
            wanted.append(ListenerRegistration(int(EventType.TRIGGERED), channel_id,
                                               triggered_listener_url(config, tenant)))
            continue
        wanted.extend(ListenerRegistration(int(event), channel_id, listener_url(config, tenant))
                      for event in SCHEDULED_EVENTS)
    return wanted


async def register_listeners(config: Config, tenant: str, optimove: OptimoveClient
                             ) -> list[ListenerRegistration]:
    wanted = wanted_listeners(config, tenant)
    for item in wanted:
        await optimove.register_event_listener(item.event_type, item.url, item.channel_id)
    return wanted


async def unregister_listeners(config: Config, tenant: str, optimove: OptimoveClient
                               ) -> list[ListenerRegistration]:
    wanted = wanted_listeners(config, tenant)
    for item in wanted:
        await optimove.unregister_event_listener(item.event_type, item.channel_id)
    return wanted
