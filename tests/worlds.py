"""A test world: both sandboxes over real HTTP, a config with a triggered channel, and its
TOML file for the commands; the features tests and the pipeline's isolation and leftovers
tests each make theirs with ``open_world``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from typer.testing import CliRunner, Result

from optibridge.cli import app as cli_app
from optibridge.cli.tenants import tenant_context
from optibridge.config import Config, parse_config
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


ConfigData = Callable[[str, str, str, int], dict[str, Any]]


@contextmanager
def open_world(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *,
               source: str, seed: int = 3, data_of: ConfigData = config_data,
               scattered_ids: bool = False) -> Iterator[World]:
    """Both sandboxes started, the config (``data_of``'s) written and parsed; the secrets
    in the environment for the commands."""
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    optimove = OptimoveSandbox({OPTIMOVE_KEY: TENANT}, rate_limit=(10_000, 1.0))
    platform = PlatformSandbox([PLATFORM_KEY], seed=seed, callback_window=0.3, tick=0.02,
                               rates=EventRates(delivered=0.9, bounced=0.1),
                               scattered_ids=scattered_ids)
    servers = [start_server(optimove_app(optimove)), start_server(platform_app(platform))]
    port = free_port()
    data = data_of(database_url, servers[0].url, servers[1].url, port)
    path = tmp_path / "optibridge.toml"
    path.write_text(tomli_w.dumps(data))
    config = parse_config(data, source, environ=ENVIRON)
    try:
        yield World(optimove, platform, servers, config, path, port)
    finally:
        for server in reversed(servers):
            server.stop()
