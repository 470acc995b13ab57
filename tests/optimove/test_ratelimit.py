"""The shared limiter keeps every caller of one API key under the limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterator, Sequence

import httpx
import pytest

from optibridge.config import TenantConfig
from optibridge.optimove import OptimoveClient, OptimoveRateLimited
from optibridge.ratelimit import Priority, SlidingWindowLimiter
from optibridge.retry import RetryPolicy
from optibridge.sandbox.optimove import RATE_LIMIT_BODY, OptimoveSandbox, create_app
from optibridge.serving import RunningServer, serving

from .conftest import EMAIL, FAST_RETRY, KEY, TENANT, rows

LIMIT, WINDOW = 5, 1.0


@pytest.fixture
def tight() -> Iterator[tuple[OptimoveSandbox, RunningServer]]:
    sandbox = OptimoveSandbox({KEY: TENANT}, rate_limit=(LIMIT, WINDOW))
    with serving(create_app(sandbox)) as running:
        yield sandbox, running


def _max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


async def test_many_concurrent_callers_stay_under_the_limit(
        tight: tuple[OptimoveSandbox, RunningServer]) -> None:
    sandbox, server = tight
    sandbox.load_audience(TENANT, 1, EMAIL, rows(3))
    limiter = SlidingWindowLimiter(LIMIT, WINDOW)
    # Two clients of the same key share one limiter, as every call of a tenant does.
    async with OptimoveClient(server.url, KEY, limiter=limiter, retry=FAST_RETRY) as one, \
            OptimoveClient(server.url, KEY, limiter=limiter, retry=FAST_RETRY) as two:
        calls: list[Awaitable[Sequence[object]]] = [one.get_execution_channels() for _ in range(6)]
        calls += [two.get_customer_send_details(1, EMAIL) for _ in range(6)]
        results = await asyncio.gather(*calls)
    assert all(results)
    journal = sandbox.journal(TENANT)
    assert len(journal) == 12
    assert [e.status for e in journal].count(429) == 0
    assert _max_in_any_window([e.monotonic for e in journal], WINDOW) <= LIMIT


async def test_sandbox_refuses_over_the_limit_and_records_nothing(
        tight: tuple[OptimoveSandbox, RunningServer]) -> None:
    sandbox, server = tight
    body = [{"ChannelID": EMAIL, "CampaignID": 1, "TemplateID": 1, "MetricID": 0,
             "MetricValue": 10}]
    async with httpx.AsyncClient(base_url=server.url, headers={"X-API-KEY": KEY}) as raw:
        answers = [await raw.post("/current/integrations/UpdateCampaignMetrics", json=body)
                   for _ in range(LIMIT + 2)]
    statuses = [a.status_code for a in answers]
    assert statuses == [200] * LIMIT + [429, 429]
    assert answers[-1].json() == RATE_LIMIT_BODY
    assert int(answers[-1].headers["Retry-After"]) >= 1
    refused = [e for e in sandbox.journal(TENANT) if e.status == 429]
    assert len(refused) == 2 and not any(e.applied for e in refused)


async def test_client_honours_retry_after(tight: tuple[OptimoveSandbox, RunningServer]) -> None:
    sandbox, server = tight
    # A limiter far above the server's limit: only the server's 429 can slow us down.
    async with OptimoveClient(server.url, KEY, limiter=SlidingWindowLimiter(100, 1.0),
                              retry=RetryPolicy(attempts=3, base_delay=0.01)) as client:
        started = time.monotonic()
        for _ in range(LIMIT + 1):
            await client.get_execution_channels()
        elapsed = time.monotonic() - started
    statuses = [e.status for e in sandbox.journal(TENANT)]
    assert statuses.count(429) == 1 and statuses[-1] == 200
    assert elapsed >= 0.9  # waited the whole-second Retry-After, not the 10 ms backoff


async def test_rate_limited_after_all_attempts(
        tight: tuple[OptimoveSandbox, RunningServer]) -> None:
    _, server = tight
    async with OptimoveClient(server.url, KEY, limiter=SlidingWindowLimiter(100, 1.0),
                              retry=RetryPolicy(attempts=1)) as client:
        for _ in range(LIMIT):
            await client.get_execution_channels()
        with pytest.raises(OptimoveRateLimited, match="GetExecutionChannels"):
            await client.get_execution_channels()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_limiter_serves_pull_before_report() -> None:
    clock = FakeClock()
    # A short window so that the limiter's real-loop timer re-checks often; time itself
    # only moves when the test moves the fake clock.
    limiter = SlidingWindowLimiter(2, 0.02, margin=0.0, clock=clock)
    await limiter.acquire(Priority.NORMAL)
    await limiter.acquire(Priority.NORMAL)  # the window is now full
    order: list[str] = []

    async def take(name: str, priority: Priority) -> None:
        await limiter.acquire(priority)
        order.append(name)

    waiting = [asyncio.create_task(take("report-1", Priority.REPORT)),
               asyncio.create_task(take("report-2", Priority.REPORT)),
               asyncio.create_task(take("pull", Priority.PULL))]
    await asyncio.sleep(0.1)
    assert order == [] and limiter.pending() == 3  # the fake clock has not moved
    clock.now = 0.02  # both earlier grants leave the window: two slots open
    await asyncio.sleep(0.1)
    assert order == ["pull", "report-1"]
    clock.now = 0.04
    await asyncio.gather(*waiting)
    assert order == ["pull", "report-1", "report-2"]
    assert limiter.granted == 5


async def test_clients_of_one_tenant_share_its_limiter(
        tight: tuple[OptimoveSandbox, RunningServer]) -> None:
    sandbox, server = tight
    tenant = TenantConfig.model_validate({
        "optimove_url": server.url, "api_key": KEY,
        "rate_limit": {"requests": LIMIT, "per_seconds": WINDOW},
        "channels": {EMAIL: {"type": "email", "address_attribute": "Email"}},
        "platform": {"base_url": "http://platform.test", "api_key": "p", "bounce_domain": 1}})
    async with OptimoveClient.from_tenant(tenant) as one, \
            OptimoveClient.from_tenant(tenant) as two:
        await asyncio.gather(*[c.get_execution_channels() for c in (one, two) * 4])
    journal = sandbox.journal(TENANT)
    assert len(journal) == 8 and all(e.status == 200 for e in journal)
    assert {e.path for e in journal} == {"/current/actions/GetExecutionChannels"}
    assert _max_in_any_window([e.monotonic for e in journal], WINDOW) <= LIMIT


async def test_a_slot_counts_from_the_answer_not_from_the_start() -> None:
    """The server may receive a call any time before its answer: the slot is held until
    a window after the answer, so a slow call cannot let the next burst overlap it."""
    clock = FakeClock()
    limiter = SlidingWindowLimiter(1, 0.02, margin=0.0, clock=clock)
    second = None
    async with limiter.slot():
        second = asyncio.create_task(limiter.acquire())
        clock.now = 1.0  # a slow call: long past a window after its start
        await asyncio.sleep(0.05)
        assert not second.done()  # still in flight: its slot is held
    clock.now = 1.01  # answered at 1.0: the window runs to 1.02
    await asyncio.sleep(0.05)
    assert not second.done()
    clock.now = 1.02
    await asyncio.wait_for(second, 1)
    assert limiter.granted == 2
