"""A tenant's campaigns are pulled side by side (``pulls_at_once``), not one after another:
a page's store takes about as long as the rate limit's interval between calls, so one pull
alone left part of the limit unused, and every other campaign waited for it to end."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pytest

from optibridge.domain import AudienceEntry, AudiencePage, CampaignRecord, CampaignStage
from optibridge.pipeline import worker
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.lease import LeaseLost
from optibridge.pipeline.nudges import Loop
from optibridge.pipeline.worker import pull_step
from optibridge.sandbox.optimove import AudienceRow, OptimoveSandbox
from tests.pipeline.in_doubt_world import EMAIL, pipeline

WHEN = dt.datetime(2030, 1, 1, 9)
FIRST, SECOND = 31, 32  # campaign IDs


def _load(sandbox: OptimoveSandbox, campaign_id: int, prefix: str) -> None:
    sandbox.load_audience("t", campaign_id, EMAIL, [
        AudienceRow(f"{prefix}{i}", 1, WHEN, {"Email": f"{prefix}{i}@example.com"})
        for i in range(5)])  # three pages of two


async def _pull_both(ctx: TenantContext) -> None:
    """One pull step; both campaigns end PULLED, all five customers each, no failure."""
    await pull_step(ctx)
    for campaign_id in (FIRST, SECOND):
        found = await ctx.store.get_campaign("t", campaign_id, EMAIL)
        assert found is not None and found.stage == CampaignStage.PULLED
        assert found.pulled == 5
    assert await ctx.store.work_failures("t") == []


async def _pages_in_order(ctx: TenantContext, sandbox: OptimoveSandbox, *,
                          pulls_at_once: int) -> list[int]:
    """Pull both campaigns in one pass; the campaign of each page stored, in order. The
    first campaign's second page waits (5 s at most) until the second's first is in."""
    ctx.tenant = ctx.tenant.model_copy(update={"page_size": 2,
                                               "pulls_at_once": pulls_at_once})
    _load(sandbox, FIRST, "a")
    _load(sandbox, SECOND, "b")
    first, _ = await ctx.store.open_campaign("t", FIRST, EMAIL)
    await ctx.store.open_campaign("t", SECOND, EMAIL)
    second_started = asyncio.Event()
    stored: list[int] = []
    store_page = ctx.store.store_audience_page

    async def spied(campaign_pk: int, channel_type: str, skip: int,
                    entries: AudiencePage | Sequence[AudienceEntry], last_page: bool) -> bool:
        if campaign_pk == first.id and skip > 0 and pulls_at_once > 1:
            await asyncio.wait_for(second_started.wait(), 5)
        if campaign_pk != first.id:
            second_started.set()
        stored.append(campaign_pk)
        return await store_page(campaign_pk, channel_type, skip, entries, last_page)

    ctx.store.store_audience_page = spied  # type: ignore[method-assign]
    await _pull_both(ctx)
    return [1 if pk == first.id else 2 for pk in stored]


async def test_two_campaigns_are_pulled_side_by_side(tmp_path: Path) -> None:
    async with pipeline(f"sqlite:///{tmp_path / 'p.db'}") as (ctx, sandbox):
        order = await _pages_in_order(ctx, sandbox, pulls_at_once=2)
    assert sorted(order) == [1, 1, 1, 2, 2, 2]
    assert order.index(2) < len(order) - 1 - order[::-1].index(1)  # interleaved


async def test_a_campaign_notified_during_a_pull_starts_before_that_pull_ends(
        tmp_path: Path) -> None:
    """The second campaign appears only once the first's first page is stored; the first's
    next page waits (5 s at most) for the second's first page."""
    async with pipeline(f"sqlite:///{tmp_path / 'p.db'}") as (ctx, sandbox):
        ctx.tenant = ctx.tenant.model_copy(update={"page_size": 2})
        _load(sandbox, FIRST, "a")
        _load(sandbox, SECOND, "b")
        first, _ = await ctx.store.open_campaign("t", FIRST, EMAIL)
        second_started = asyncio.Event()
        store_page = ctx.store.store_audience_page

        async def spied(campaign_pk: int, channel_type: str, skip: int,
                        entries: AudiencePage | Sequence[AudienceEntry],
                        last_page: bool) -> bool:
            if campaign_pk != first.id:
                second_started.set()
            elif skip == 0:
                await ctx.store.open_campaign("t", SECOND, EMAIL)
                ctx.nudges.nudge(Loop.PULL)  # as the listener does
            else:
                await asyncio.wait_for(second_started.wait(), 5)
            return await store_page(campaign_pk, channel_type, skip, entries, last_page)

        ctx.store.store_audience_page = spied  # type: ignore[method-assign]
        await _pull_both(ctx)


async def test_one_at_a_time_when_the_tenant_says_so(tmp_path: Path) -> None:
    async with pipeline(f"sqlite:///{tmp_path / 'p.db'}") as (ctx, sandbox):
        assert await _pages_in_order(ctx, sandbox, pulls_at_once=1) == [1, 1, 1, 2, 2, 2]


async def test_a_lost_lease_stops_every_pull_and_reaches_the_loop_as_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not wrapped in an exception group: the worker's loop handles ``LeaseLost`` by name."""
    started: list[int] = []

    async def pull_campaign(ctx: TenantContext, campaign: CampaignRecord) -> int:
        started.append(campaign.campaign_id)
        if campaign.campaign_id == FIRST:
            raise LeaseLost("taken over")
        await asyncio.sleep(30)  # cancelled when the other's lease is lost
        return 0

    monkeypatch.setattr(worker, "pull_campaign", pull_campaign)
    async with pipeline(f"sqlite:///{tmp_path / 'p.db'}") as (ctx, _):
        for campaign_id in (FIRST, SECOND):
            await ctx.store.open_campaign("t", campaign_id, EMAIL)
        with pytest.raises(LeaseLost):
            await asyncio.wait_for(pull_step(ctx), 10)
    assert sorted(started) == [FIRST, SECOND]
