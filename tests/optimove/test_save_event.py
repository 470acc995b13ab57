"""saveEvent: the client signs exactly the bytes it sends, the sandbox refuses what the
public page forbids with a message naming the problem, and every fault ends in a state the
client can tell (applied, surely not applied, or unknown)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from optibridge.optimove.errors import (
    OptimoveAuthError,
    OptimoveOutcomeUnknown,
    OptimoveRateLimited,
    OptimoveRequestRejected,
)
from optibridge.optimove.events import (
    EngagementEventsClient,
    MetricEvent,
    read_answer,
    serialise,
    signature,
    utc_timestamp,
)
from optibridge.ratelimit import SlidingWindowLimiter
from optibridge.sandbox.optimove import FaultPlan, MetricTenant, OptimoveSandbox, create_app
from optibridge.serving import RunningServer, serving
from tests.optimove.conftest import KEY, TENANT

TOKEN = "metric-token-acme-42"
TENANT_ID = 1000


def event(customer: str = "C1", name: str = "opened", age: timedelta = timedelta(0)
          ) -> MetricEvent:
    return MetricEvent(name, customer, datetime.now(UTC) - age,
                       {"campaign_id": 1001, "send_time": "2026-12-01 10:00:00"})


@pytest.fixture
def metric_sandbox() -> OptimoveSandbox:
    return OptimoveSandbox({KEY: TENANT}, metric_tenants=[
        MetricTenant(TENANT, TENANT_ID, TOKEN, max_batch=5)])


@pytest.fixture
def metric_server(metric_sandbox: OptimoveSandbox) -> Iterator[RunningServer]:
    with serving(create_app(metric_sandbox)) as running:
        yield running


def url(server: RunningServer) -> str:
    return f"{server.url}/metric-{TENANT_ID}/api/saveEvent"


@pytest.fixture
async def events(metric_server: RunningServer) -> AsyncIterator[EngagementEventsClient]:
    client = EngagementEventsClient(url(metric_server), TOKEN.encode(),
                                    limiter=SlidingWindowLimiter(10_000, 1.0), timeout=5.0)
    yield client
    await client.aclose()


def test_the_body_is_serialised_once_and_its_exact_bytes_signed() -> None:
    body = serialise([event("C1"), event("C2")])
    items = json.loads(body)
    assert [i["customer"] for i in items] == ["C1", "C2"]
    assert items[0]["category"] == "metric" and items[0]["timestamp"].endswith(" UTC")
    assert isinstance(json.loads(serialise([event()])), dict)  # one event: an object
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert signature(b"k", body) == expected == expected.lower()
    assert utc_timestamp(datetime(2020, 4, 12, 17, 32, 6, 94_000)) == \
        "2020-04-12 17:32:06.094 UTC"


async def test_accepted_events_are_counted_and_a_repeat_counts_twice(
        events: EngagementEventsClient, metric_sandbox: OptimoveSandbox) -> None:
    batch = [event("C1"), event("C2")]
    assert await events.save_events(batch, 5)
    await events.save_events(batch[:1], 5)
    counts = metric_sandbox.event_counts(TENANT)
    assert sorted(counts.values()) == [1, 2]
    journal = metric_sandbox.journal(TENANT)
    assert [(e.function, e.status, e.applied) for e in journal] == [("saveEvent", 200, True)] * 2


def _signed(body: bytes, token: str = TOKEN, version: str = "1") -> dict[str, str]:
    return {"X-Optimove-Signature-Version": version, "Content-Type": "application/json",
            "x-optimove-signature-content": signature(token.encode(), body)}


@pytest.mark.parametrize(("sent", "headers", "named"), [
    (b"{}", _signed(b"{}", "another-token"), "not the HMAC-SHA256 of the body"),
    (b'{"event" :1}', _signed(b'{"event":1}'), "not the HMAC-SHA256 of the body"),
    (b"{}", _signed(b"{}", version="2"), "X-Optimove-Signature-Version must be 1"),
    (b"{}", {"X-Optimove-Signature-Version": "1"}, "x-optimove-signature-content is missing"),
])
async def test_a_wrong_signature_is_refused_naming_it(
        metric_server: RunningServer, metric_sandbox: OptimoveSandbox, sent: bytes,
        headers: dict[str, str], named: str) -> None:
    body = serialise([event()]) if sent == b"{}" else sent
    if sent == b"{}" and "x-optimove-signature-content" in headers:
        token = "another-token" if "HMAC" in named else TOKEN
        headers = {**headers, "x-optimove-signature-content": signature(token.encode(), body)}
    async with httpx.AsyncClient() as http:
        answer = await http.post(url(metric_server), content=body, headers=headers)
    assert answer.status_code == 401
    assert answer.json()["status"] == "error" and named in answer.json()["message"]
    assert metric_sandbox.received_events(TENANT) == []


async def test_the_client_reads_a_wrong_token_as_refused_key(
        metric_server: RunningServer, metric_sandbox: OptimoveSandbox) -> None:
    client = EngagementEventsClient(url(metric_server), b"wrong-token",
                                    limiter=SlidingWindowLimiter(100, 1.0))
    with pytest.raises(OptimoveAuthError, match="signature"):
        await client.save_events([event()], 5)
    await client.aclose()
    assert metric_sandbox.received_events(TENANT) == []


@pytest.mark.parametrize(("events_sent", "named"), [
    ([event(age=timedelta(days=7, minutes=1))], "older than 7 days"),
    ([event(name="openned")], "unknown event name 'openned'"),
    ([event(str(i)) for i in range(6)], "6 events in one call, the limit is 5"),
])
async def test_the_sandbox_refuses_naming_the_problem(
        metric_server: RunningServer, metric_sandbox: OptimoveSandbox,
        events_sent: list[MetricEvent], named: str) -> None:
    body = serialise(events_sent)
    async with httpx.AsyncClient() as http:
        answer = await http.post(url(metric_server), content=body, headers=_signed(body))
    assert answer.status_code == 400 and named in answer.json()["message"]
    assert metric_sandbox.received_events(TENANT) == []


@pytest.mark.parametrize(("item", "named"), [
    ({"category": "click"}, "category: must be 'metric'"),
    ({"visitor": "v1"}, "exactly one of customer and visitor"),
    ({"customer": None}, "exactly one of customer and visitor"),
    ({"timestamp": "2026-12-01 10:00:00"}, "is not UTC"),
])
async def test_each_rule_of_the_page_is_checked(
        metric_server: RunningServer, metric_sandbox: OptimoveSandbox,
        item: dict[str, object], named: str) -> None:
    body_json = {**json.loads(serialise([event()])), **item}
    body_json = {k: v for k, v in body_json.items() if v is not None}
    body = json.dumps(body_json).encode()
    async with httpx.AsyncClient() as http:
        answer = await http.post(url(metric_server), content=body, headers=_signed(body))
    assert answer.status_code == 400 and named in answer.json()["message"]


@pytest.mark.parametrize(("plan", "error", "applied"), [
    (FaultPlan(error_rate=1.0), OptimoveOutcomeUnknown, False),
    (FaultPlan(rate_limit_rate=1.0), OptimoveRateLimited, False),
    (FaultPlan(lost_response_rate=1.0), OptimoveOutcomeUnknown, True),
    (FaultPlan(error_body_rate=1.0), OptimoveOutcomeUnknown, False),
])
async def test_faults_end_applied_not_applied_or_unknown(
        events: EngagementEventsClient, metric_sandbox: OptimoveSandbox,
        plan: FaultPlan, error: type[Exception], applied: bool) -> None:
    metric_sandbox.set_faults(plan)
    with pytest.raises(error):
        await events.save_events([event()], 5)
    assert bool(metric_sandbox.received_events(TENANT)) is applied


def test_an_error_body_with_200_is_an_error() -> None:
    assert read_answer(200, b'{"status":"success","message":"abc"}') == "abc"
    with pytest.raises(OptimoveRequestRejected):
        read_answer(200, b'{"status":"error","message":"Failed to validate event"}')
    with pytest.raises(OptimoveOutcomeUnknown):
        read_answer(200, b'{"status":"error","message":"try later"}')
    with pytest.raises(OptimoveOutcomeUnknown):
        read_answer(200, b"")
