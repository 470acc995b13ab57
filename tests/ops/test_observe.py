"""The clients report each HTTP attempt; the metrics count calls, 429s and retries."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from optibridge import observe
from optibridge.optimove.client import OptimoveClient
from optibridge.platform.client import PlatformClient
from optibridge.platform.errors import PlatformUnavailable
from optibridge.retry import RetryPolicy
from optibridge.service.metrics import Metrics
from tests.ops.conftest import small_config

FAST = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.01)


def test_path_template_keeps_labels_small() -> None:
    assert observe.path_template("/campaign/17/payload") == "/campaign/{id}/payload"
    assert observe.path_template("/list/3?x=1") == "/list/{id}"
    assert observe.path_template("/template") == "/template"


def test_a_failing_observer_never_breaks_a_call() -> None:
    seen: list[tuple[str, str, str, bool]] = []

    def broken(api: str, call: str, status: str, retried: bool) -> None:
        raise RuntimeError("no")

    def good(api: str, call: str, status: str, retried: bool) -> None:
        seen.append((api, call, status, retried))

    observe.add_observer(broken)
    observe.add_observer(good)
    try:
        observe.api_call("platform", "GET /x", 200, False)
    finally:
        observe.remove_observer(broken)
        observe.remove_observer(good)
    assert seen == [("platform", "GET /x", "200", False)]


async def test_calls_429s_and_retries_are_counted(tmp_path: Path) -> None:
    answers = iter([429, 503, 200])

    def optimove(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers), json=[])

    def platform(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/domain":
            return httpx.Response(200, json={"items": [], "total": 0})
        raise httpx.ConnectError("refused")

    metrics = Metrics(small_config(tmp_path))
    observe.add_observer(metrics.observe_call)
    try:
        async with OptimoveClient("http://o", "k" * 8, retry=FAST,
                                  transport=httpx.MockTransport(optimove)) as client:
            await client.get_registered_event_listeners()
        async with PlatformClient("http://p", "k" * 8, retry=FAST,
                                  transport=httpx.MockTransport(platform)) as other:
            await other.list_domains()
            with pytest.raises(PlatformUnavailable):  # out of retries
                await other.get_campaign(5)
    finally:
        observe.remove_observer(metrics.observe_call)

    def sample(name: str, **labels: str) -> float:
        found = metrics.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    call = "GetRegisteredEventListeners"
    for status in ("429", "503", "200"):
        assert sample("optibridge_api_calls_total", api="optimove", call=call,
                      status=status) == 1
    assert sample("optibridge_api_rate_limited_total", api="optimove") == 1
    assert sample("optibridge_api_retries_total", api="optimove", call=call) == 2
    assert sample("optibridge_api_calls_total", api="platform", call="GET /domain",
                  status="200") == 1
    assert sample("optibridge_api_calls_total", api="platform", call="GET /campaign/{id}",
                  status="error") == 3
    assert sample("optibridge_api_retries_total", api="platform",
                  call="GET /campaign/{id}") == 2
