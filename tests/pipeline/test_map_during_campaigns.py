"""Mapping yields to a campaign's steps to READY: while one of the tenant's audience pulls
or a send's upload is under way, its callbacks are mapped in a pass every
``timing.map_during_campaigns`` seconds at most, and at once when it ends. The pull is on
Optimove's clock (a page not stored when its call slot comes is budget lost), and on SQLite
a pass over large callbacks held an upload point's write for seconds; mapping can wait."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from optibridge.config import TimingConfig
from optibridge.domain import AudienceEntry, AudiencePage, Event, InboxItem, SendState
from optibridge.pipeline import execution
from optibridge.pipeline.audience import pull_audience
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.worker import map_step
from optibridge.platform.api import ImportResult
from optibridge.sandbox.optimove import AudienceRow
from optibridge.signing import UrlSigner
from optibridge.store import open_store
from tests.pipeline.in_doubt_world import CAMPAIGN, EMAIL, pipeline
from tests.pipeline.test_execution_unit import ImportingPlatform

WHEN = dt.datetime(2030, 1, 1, 9)


async def _heard_send(tmp_path: Path, map_during_campaigns: float) -> TenantContext:
    """A send of three recipients and one stored callback about two of them."""
    store = await open_store(f"sqlite:///{tmp_path / 'x.db'}")
    ctx = TenantContext(name="t", tenant=None, config=None, store=store,  # type: ignore[arg-type]
                        optimove=None, platform=None,  # type: ignore[arg-type]
                        signer=UrlSigner(b"s" * 16, "http://127.0.0.1:9"),
                        timing=TimingConfig(map_during_campaigns=map_during_campaigns))
    campaign, _ = await store.open_campaign("t", 1, 504)
    await store.store_audience_page(campaign.id, "email", 0, [
        AudienceEntry(f"C{i}", 7, WHEN, f"c{i}@example.com") for i in range(3)], True)
    [send] = await store.sends("t", list(SendState))
    await store.record_callbacks([InboxItem(send.id, Event.DELIVERED, 1_893_490_000,
                                            ("c0@example.com", "c1@example.com"))])
    return ctx


async def test_mapping_waits_while_a_campaign_step_is_under_way_and_goes_when_it_ends(
        tmp_path: Path) -> None:
    ctx = await _heard_send(tmp_path, map_during_campaigns=30.0)
    try:
        with ctx.pull_first.under_way():
            mapping = asyncio.create_task(map_step(ctx))
            await asyncio.sleep(0.5)
            assert not mapping.done()
            assert await ctx.store.inbox_backlog() == 1  # the callback, not yet mapped
        assert await asyncio.wait_for(mapping, 10) == 1
        assert await ctx.store.inbox_backlog() == 0
    finally:
        await ctx.store.db.dispose()


async def test_during_a_long_pull_mapping_still_goes_every_map_during_campaigns_seconds(
        tmp_path: Path) -> None:
    ctx = await _heard_send(tmp_path, map_during_campaigns=0.2)
    try:
        with ctx.pull_first.under_way():
            assert await asyncio.wait_for(map_step(ctx), 10) == 1
            assert await ctx.store.inbox_backlog() == 0
    finally:
        await ctx.store.db.dispose()


async def test_a_pull_is_under_way_from_its_first_page_to_its_last(tmp_path: Path) -> None:
    async with pipeline(f"sqlite:///{tmp_path / 'p.db'}") as (ctx, sandbox):
        ctx.tenant = ctx.tenant.model_copy(update={"page_size": 2})
        sandbox.load_audience("t", CAMPAIGN, EMAIL, [
            AudienceRow(f"C{i}", 1, WHEN, {"Email": f"c{i}@example.com"}) for i in range(5)])
        campaign, _ = await ctx.store.open_campaign("t", CAMPAIGN, EMAIL)
        under_way: list[bool] = []
        store_page = ctx.store.store_audience_page

        async def spied(campaign_pk: int, channel_type: str, skip: int,
                        entries: AudiencePage | Sequence[AudienceEntry],
                        last_page: bool) -> bool:
            under_way.append(ctx.pull_first.any_under_way)
            return await store_page(campaign_pk, channel_type, skip, entries, last_page)

        ctx.store.store_audience_page = spied  # type: ignore[method-assign]
        assert not ctx.pull_first.any_under_way
        assert await pull_audience(ctx, campaign) == 5
        assert under_way == [True, True, True]
        assert not ctx.pull_first.any_under_way


async def test_an_upload_is_under_way_while_its_chunks_go_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execution, "UPLOAD_CHUNK", 2)
    platform = ImportingPlatform(refuse=set())
    under_way: list[bool] = []
    add_contacts = platform.add_contacts
    ctx = await _heard_send(tmp_path, map_during_campaigns=30.0)

    async def spied(list_id: int, contacts: Any) -> ImportResult:
        under_way.append(ctx.pull_first.any_under_way)
        return await add_contacts(list_id, contacts)

    platform.add_contacts = spied  # type: ignore[method-assign]
    ctx.platform = platform  # type: ignore[assignment]
    try:
        [send] = await ctx.store.sends("t", list(SendState))
        await ctx.store.update_send(send.id, state=SendState.LISTED, list_id=11)
        listed = await ctx.store.get_send(send.id)
        assert listed is not None
        assert await execution.upload_recipients(ctx, listed) == 3
        assert under_way == [True, True]
        assert not ctx.pull_first.any_under_way
    finally:
        await ctx.store.db.dispose()
