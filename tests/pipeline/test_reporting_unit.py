"""In-doubt report batches resolved by reading back, when batches share a customer."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from optibridge.config import parse_config
from optibridge.domain import AudienceEntry, BatchState, Event, InboxItem, SendState
from optibridge.optimove.client import OptimoveClient
from optibridge.optimove.models import CampaignInteractions, InteractionEvent
from optibridge.pipeline.context import TenantContext, Timing
from optibridge.pipeline.reporting import report_interactions, resolve_in_doubt
from optibridge.ratelimit import SlidingWindowLimiter
from optibridge.sandbox.optimove import OptimoveSandbox, create_app
from optibridge.serving import serving
from optibridge.signing import UrlSigner
from optibridge.store import open_store

DAY = dt.date(2026, 11, 20)
NOON = int(dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC).timestamp())


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[TenantContext, OptimoveSandbox]]:
    sandbox = OptimoveSandbox({"k": "t"})
    with serving(create_app(sandbox)) as running:
        config = parse_config({
            "server": {"public_url": "http://127.0.0.1:9", "signing_secret": "s" * 16},
            "tenants": {"t": {"optimove_url": running.url, "api_key": "k",
                              "channels": {"504": {"type": "email",
                                                   "address_attribute": "Email"}},
                              "platform": {"base_url": "http://127.0.0.1:9",
                                           "api_key": "p", "bounce_domain": 1}}}})
        store = await open_store(f"sqlite:///{tmp_path / 'r.db'}")
        client = OptimoveClient(running.url, "k", limiter=SlidingWindowLimiter(1000, 1.0))
        ctx = TenantContext(name="t", tenant=config.tenant("t"), config=config, store=store,
                            optimove=client, platform=None,  # type: ignore[arg-type]
                            signer=UrlSigner(b"s" * 16, "http://x"),
                            timing=Timing(in_doubt_wait=0.0))
        yield ctx, sandbox
        await client.aclose()
        await store.db.dispose()


async def two_batches_sharing_c1(ctx: TenantContext) -> list[int]:
    """Send 1 reports C1 and C2 opened, send 2 (same template) C1: one Optimove key."""
    campaign, _ = await ctx.store.open_campaign("t", 42, 504)
    t1, t2 = dt.datetime(2026, 11, 20, 9), dt.datetime(2026, 11, 20, 10)
    entries = [AudienceEntry("C1", 7, t1, "c1@x.com"), AudienceEntry("C2", 7, t1, "c2@x.com"),
               AudienceEntry("C1", 7, t2, "c1@x.com")]
    await ctx.store.store_audience_page(campaign.id, "email", 0, entries, True)
    sends = sorted(await ctx.store.sends("t", list(SendState)), key=lambda s: s.id)
    # C1 is heard first, so a batch lists C1 before C2 (a naive probe would pick C1).
    await ctx.store.record_callbacks([
        InboxItem(sends[0].id, Event.OPENED, NOON, ("c1@x.com",)),
        InboxItem(sends[0].id, Event.OPENED, NOON, ("c2@x.com",)),
        InboxItem(sends[1].id, Event.OPENED, NOON, ("c1@x.com",))])
    await ctx.store.process_inbox()
    await ctx.store.form_report_batches("t", ctx.store.clock() + 1)
    batches = await ctx.store.batches("t", [BatchState.PENDING])
    for batch in batches:  # both calls were under way when the process died
        await ctx.store.mark_batch(batch.id, BatchState.SENDING, expect=BatchState.PENDING)
    await ctx.store.suspect_interrupted_sends("t")
    return [b.id for b in batches]


async def land(ctx: TenantContext, customers: tuple[str, ...]) -> None:
    await ctx.optimove.update_campaign_interactions(CampaignInteractions(
        campaign_id=42, channel_id=504, interaction_date=DAY, template_id=7,
        event_id=InteractionEvent.OPENED, customer_ids=customers))


def held(sandbox: OptimoveSandbox) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in sandbox.reported_interactions("t"):
        counts[row.customer_id] = counts.get(row.customer_id, 0) + 1
    return counts


@pytest.mark.parametrize("landed_size", [1, 2])
async def test_only_the_batch_that_landed_is_taken_as_sent(
        world: tuple[TenantContext, OptimoveSandbox], landed_size: int) -> None:
    ctx, sandbox = world
    first, second = await two_batches_sharing_c1(ctx)
    members = {b: await ctx.store.batch_customers(b) for b in (first, second)}
    landed = first if len(members[first]) == landed_size else second
    await land(ctx, tuple(members[landed]))  # Optimove applied one call, then we crashed
    await resolve_in_doubt(ctx)
    await report_interactions(ctx, flush_all=True)
    assert held(sandbox) == {"C1": 2, "C2": 1}  # C1 once per send, C2 once: nothing twice
    assert len(await ctx.store.batches("t", [BatchState.SENT])) == 2


async def test_batches_sharing_every_customer_are_resolved_together(
        world: tuple[TenantContext, OptimoveSandbox]) -> None:
    ctx, sandbox = world
    await two_batches_sharing_c1(ctx)
    await resolve_in_doubt(ctx)  # neither landed: both pending again
    assert len(await ctx.store.batches("t", [BatchState.PENDING])) == 2
    await report_interactions(ctx, flush_all=True)
    assert held(sandbox) == {"C1": 2, "C2": 1}
