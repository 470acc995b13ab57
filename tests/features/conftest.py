"""The features tests' world (``tests.worlds``: both sandboxes over real HTTP, a config with
a triggered channel; issue 5: triggered campaigns, templates, subscriptions, read-back)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from optibridge.domain import AudienceEntry, Event, InboxItem
from tests.worlds import TENANT, World, open_world


@pytest.fixture
def world(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[World]:
    with open_world(database_url, tmp_path, monkeypatch, source="features") as made:
        yield made


async def seed_reported(world: World, campaign_id: int, channel_id: int, customers: int,
                        bounced_every: int = 4) -> list[str]:
    """A pulled campaign whose every ``bounced_every``-th customer bounced (stored as a
    callback and mapped), reported to the Optimove sandbox by the reporting flow."""
    from optibridge.pipeline.reporting import report_interactions

    store = await world.store()
    try:
        campaign, _ = await store.open_campaign(TENANT, campaign_id, channel_id)
        when = dt.datetime(2026, 3, 2, 10, 0)
        ids = [f"R{campaign_id}-{i:04d}" for i in range(customers)]
        entries = [AudienceEntry(c, 77, when, f"{c.lower()}@example.com") for c in ids]
        await store.store_audience_page(campaign.id, "email", 0, entries, True)
        send = (await store.open_sends(TENANT))[0]
        bounced = tuple(f"{c.lower()}@example.com" for c in ids[::bounced_every])
        stamp = int(when.replace(tzinfo=dt.UTC).timestamp())
        await store.record_callbacks([InboxItem(send.id, Event.BOUNCED, stamp, bounced)])
        while await store.process_inbox():
            pass
    finally:
        await store.db.dispose()
    async with world.context() as ctx:
        while await report_interactions(ctx, flush_all=True):
            pass
    return ids


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)
