"""Fixtures of the platform tests: the sandbox over real HTTP, a client, a callback receiver."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from optibridge.platform.api import CallbackBatch
from optibridge.platform.callbacks import CallbackError, parse_callback
from optibridge.platform.client import PlatformClient
from optibridge.retry import RetryPolicy
from optibridge.sandbox.platform import PlatformSandbox, create_app
from optibridge.serving import RunningServer, serving

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


@dataclass
class Receiver:
    """A tiny callback endpoint: parses with parse_callback, keeps every batch."""

    url: str = ""
    batches: list[CallbackBatch] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fail_first: int = 0  # answer 503 to this many callbacks first
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            body = await request.body()
            with self.lock:
                if self.fail_first > 0:
                    self.fail_first -= 1
                    return PlainTextResponse("try later", status_code=503)
            try:
                batch = parse_callback(body, request.scope["query_string"].decode("latin-1"))
            except CallbackError as error:
                with self.lock:
                    self.errors.append(str(error))
                return PlainTextResponse(str(error), status_code=400)
            with self.lock:
                self.batches.append(batch)
            return PlainTextResponse("ok")

        return Starlette(routes=[Route("/callback", receive, methods=["POST"])])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    with serving(found.app()) as running:
        found.url = f"{running.url}/callback"
        yield found


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)
