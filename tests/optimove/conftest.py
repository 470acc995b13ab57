"""Shared fixtures: a sandbox served over real HTTP on 127.0.0.1 and a fast client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import pytest

from optibridge.optimove import OptimoveClient
from optibridge.ratelimit import SlidingWindowLimiter
from optibridge.retry import RetryPolicy
from optibridge.sandbox.optimove import AudienceRow, OptimoveSandbox, create_app
from optibridge.serving import RunningServer, serving

KEY = "test-key-acme-0123456789"
OTHER_KEY = "test-key-globex-9876543210"
TENANT = "acme"
OTHER = "globex"
EMAIL = 504
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


def rows(count: int, *, prefix: str = "c", template: int = 11) -> list[AudienceRow]:
    """``count`` recipients with an Email and a Country attribute each."""
    when = datetime(2026, 3, 1, 9, 30)
    return [AudienceRow(f"{prefix}{i}", template, when,
                        {"Email": f"{prefix}{i}@example.com", "Country": "UA"})
            for i in range(count)]


def state_of(sandbox: OptimoveSandbox, tenant: str = TENANT) -> tuple[Any, ...]:
    """Everything a request could have changed, for before/after comparisons."""
    return (sandbox.reported_interactions(tenant), sandbox.metrics(tenant),
            {channel: sandbox.channel_templates(tenant, channel)
             for channel in sandbox.execution_channels(tenant)},
            sandbox.preferences(tenant), sandbox.customer_attributes(tenant),
            sandbox.defined_attributes(tenant), sandbox.listeners(tenant),
            sandbox.execution_channels(tenant))


@pytest.fixture
def sandbox() -> OptimoveSandbox:
    return OptimoveSandbox({KEY: TENANT, OTHER_KEY: OTHER}, rate_limit=(10_000, 1.0))


@pytest.fixture
def server(sandbox: OptimoveSandbox) -> Iterator[RunningServer]:
    with serving(create_app(sandbox)) as running:
        yield running


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[OptimoveClient]:
    async with OptimoveClient(server.url, KEY, limiter=SlidingWindowLimiter(10_000, 1.0),
                              retry=FAST_RETRY) as optimove:
        yield optimove
