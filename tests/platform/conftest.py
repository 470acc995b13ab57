"""Fixtures of the platform tests: the sandbox over real HTTP, a client, a callback receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from optibridge.platform.client import PlatformClient
from optibridge.retry import RetryPolicy
from optibridge.sandbox.platform import PlatformSandbox, create_app
from optibridge.serving import RunningServer, serving
from tests.platform.platform_receiver import Receiver

API_KEY = "sandbox-test-key-123"
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


@pytest.fixture
def api_key() -> str:
    return API_KEY


@pytest.fixture
def sandbox() -> PlatformSandbox:
    return PlatformSandbox([API_KEY], seed=7, callback_window=0.15, tick=0.02,
                           callback_retry=0.05)


@pytest.fixture
def platform_server(sandbox: PlatformSandbox) -> Iterator[RunningServer]:
    with serving(create_app(sandbox)) as running:
        yield running


@pytest.fixture
async def client(platform_server: RunningServer) -> AsyncIterator[PlatformClient]:
    platform = PlatformClient(platform_server.url, API_KEY, bounce_domain=1, retry=FAST_RETRY)
    yield platform
    await platform.aclose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    with serving(found.app()) as running:
        found.url = f"{running.url}/callback"
        yield found

