"""Both sandboxes over real HTTP, a config with a triggered channel, and its TOML file for
the commands (issue 5: triggered campaigns, templates, subscriptions, read-back)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from typer.testing import CliRunner, Result

from optibridge.cli import app as cli_app
from optibridge.cli.tenants import tenant_context
from optibridge.config import Config, parse_config
from optibridge.domain import AudienceEntry, Event, InboxItem
from optibridge.pipeline.context import TenantContext
from optibridge.sandbox.optimove import OptimoveSandbox
from optibridge.sandbox.optimove import create_app as optimove_app
from optibridge.sandbox.platform import EventRates, PlatformSandbox
from optibridge.sandbox.platform import create_app as platform_app
from optibridge.serving import RunningServer, free_port, start_server
from optibridge.store import Store, open_store

TENANT = "acme"
EMAIL, SMS, TRIGGERED = 504, 505, 511
OPTIMOVE_KEY = "features-optimove-key-0123456789"
PLATFORM_KEY = "features-platform-key-0123456789"
ENVIRON = {"FEATURES_SECRET": "features-signing-secret-0123456789",
           "FEATURES_OPTIMOVE_KEY": OPTIMOVE_KEY, "FEATURES_PLATFORM_KEY": PLATFORM_KEY}


@dataclass
class World:
    optimove: OptimoveSandbox
    platform: PlatformSandbox
    servers: list[RunningServer]
    config: Config
    config_path: Path
    service_port: int

    @property
    def optimove_url(self) -> str:
        return self.servers[0].url

    @property
    def service_url(self) -> str:
        return f"http://127.0.0.1:{self.service_port}"

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(cli_app, [*args, "-c", str(self.config_path)])

    @asynccontextmanager
    async def context(self) -> AsyncIterator[TenantContext]:
        async with tenant_context(self.config, TENANT) as ctx:
            yield ctx

    async def store(self) -> Store:
        return await open_store(self.config.server.database_url)


def config_data(database_url: str, optimove_url: str, platform_url: str, port: int
                ) -> dict[str, Any]:
    channel = {"personalization": ["FirstName"],
               "personalization_defaults": {"FirstName": "friend"}}
    return {
        "server": {"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}",
                   "database_url": database_url, "signing_secret_env": "FEATURES_SECRET"},
        "timing": {"idle": 0.05, "in_doubt_wait": 0.5, "follow_min": 0.2, "follow_max": 1.0,
                   "callback_margin": 0.5},
        "tenants": {TENANT: {
            "optimove_url": optimove_url, "api_key_env": "FEATURES_OPTIMOVE_KEY",
            "rate_limit": {"requests": 10_000, "per_seconds": 1.0},
            "report_interval_seconds": 0.5, "callback_window_seconds": 0.3,
            "trigger_window_seconds": 0.25,
            "channels": {
                str(EMAIL): {"type": "email", "address_attribute": "Email", **channel},
                str(SMS): {"type": "sms", "address_attribute": "Phone", **channel},
                str(TRIGGERED): {"type": "email", "address_attribute": "Email",
                                 "triggered": True, **channel},
            },
            "platform": {"base_url": platform_url, "api_key_env": "FEATURES_PLATFORM_KEY",
                         "bounce_domain": 1,
                         "rate_limit": {"requests": 10_000, "per_seconds": 1.0}},
        }},
    }


@pytest.fixture
def world(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[World]:
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    optimove = OptimoveSandbox({OPTIMOVE_KEY: TENANT}, rate_limit=(10_000, 1.0))
    platform = PlatformSandbox([PLATFORM_KEY], seed=3, callback_window=0.3, tick=0.02,
                               rates=EventRates(delivered=0.9, bounced=0.1))
    servers = [start_server(optimove_app(optimove)), start_server(platform_app(platform))]
    port = free_port()
    data = config_data(database_url, servers[0].url, servers[1].url, port)
    path = tmp_path / "optibridge.toml"
    path.write_text(tomli_w.dumps(data))
    config = parse_config(data, "features", environ=ENVIRON)
    try:
        yield World(optimove, platform, servers, config, path, port)
    finally:
        for server in reversed(servers):
            server.stop()


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
