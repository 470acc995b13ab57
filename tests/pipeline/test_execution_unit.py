"""Execution's steps against a scripted platform: a cancellation that lands mid-step wins."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

from optibridge.domain import AudienceEntry, SendState
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.execution import execute_send
from optibridge.platform.api import CampaignState, ImportResult, PlatformCampaign
from optibridge.signing import UrlSigner
from optibridge.store import Store, open_store


class GatedPlatform:
    """Creates campaigns only when the test opens the gate; records deletions."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.deleted: list[int] = []
        self.moves: list[CampaignState] = []

    async def create_list(self, name: str) -> int:
        return 11

    async def add_contacts(self, list_id: int, contacts: Any) -> ImportResult:
        return ImportResult(added=len(contacts))

    async def create_campaign(self, *args: Any) -> PlatformCampaign:
        self.entered.set()
        await self.gate.wait()
        return PlatformCampaign(77, "n", CampaignState.DRAFT, 0, 11, 1)

    async def attach_payload(self, *args: Any) -> None:
        return None

    async def delete_campaign(self, campaign_id: int) -> None:
        self.deleted.append(campaign_id)

    async def get_campaign(self, campaign_id: int) -> PlatformCampaign:
        return PlatformCampaign(campaign_id, "n", CampaignState.DRAFT, 0, 11, 1)

    async def move_campaign(self, campaign_id: int, target: CampaignState,
                            current: Any = None) -> PlatformCampaign:
        self.moves.append(target)
        return PlatformCampaign(campaign_id, "n", target, 0, 11, 1)


async def one_send(store: Store) -> int:
    campaign, _ = await store.open_campaign("t", 1, 504)
    entries = [AudienceEntry("C1", 7, dt.datetime(2030, 1, 1), "c1@example.com")]
    await store.store_audience_page(campaign.id, "email", 0, entries, True)
    return (await store.sends("t", list(SendState)))[0].id


async def test_a_cancellation_during_campaign_creation_wins(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'x.db'}")
    platform = GatedPlatform()
    ctx = TenantContext(name="t", tenant=None, config=None, store=store,  # type: ignore[arg-type]
                        optimove=None, platform=platform,  # type: ignore[arg-type]
                        signer=UrlSigner(b"s" * 16, "http://127.0.0.1:9"))
    send_id = await one_send(store)
    send = await store.get_send(send_id)
    assert send is not None
    running = asyncio.create_task(execute_send(ctx, send))
    await platform.entered.wait()  # the campaign is being created on the platform...
    await store.update_send(send_id, state=SendState.CANCELLED)  # ...when EventTypeID 4 lands
    platform.gate.set()
    assert await running == SendState.CANCELLED
    final = await store.get_send(send_id)
    assert final is not None and final.state == SendState.CANCELLED
    assert platform.deleted == [77]  # the DRAFT it had just made is removed
    assert platform.moves == []  # and nothing was ever made READY
    await store.db.dispose()
