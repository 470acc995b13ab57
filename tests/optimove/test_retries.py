"""Retries under injected faults; UpdateCampaignInteractions is sent once, whatever happens."""

from __future__ import annotations

import datetime as dt
import logging
from datetime import date

import httpx
import pytest

from optibridge.optimove import (
    OptimoveAuthError,
    OptimoveClient,
    OptimoveOutcomeUnknown,
    OptimoveRateLimited,
    OptimoveRequestRejected,
    OptimoveServerError,
    OptimoveUnavailable,
    OptimoveUnexpectedResponse,
)
from optibridge.optimove.models import (
    CampaignInteractions,
    CampaignMetric,
    InteractionEvent,
    Metric,
)
from optibridge.ratelimit import SlidingWindowLimiter
from optibridge.sandbox.optimove import FaultPlan, OptimoveSandbox
from optibridge.serving import RunningServer, free_port

from .conftest import EMAIL, FAST_RETRY, KEY, TENANT, rows


def _batch(*customers: str) -> CampaignInteractions:
    return CampaignInteractions(campaign_id=3, channel_id=EMAIL, interaction_date=date(2026, 3, 2),
                                template_id=11, event_id=InteractionEvent.OPENED,
                                customer_ids=customers or ("c1", "c2"))


def _calls(sandbox: OptimoveSandbox, function: str) -> list[str | None]:
    return [e.fault for e in sandbox.journal(TENANT) if e.function == function]


@pytest.mark.parametrize("plan", [
    FaultPlan(error_rate=0.5, seed=1),
    FaultPlan(rate_limit_rate=0.5, seed=2),
    FaultPlan(lost_response_rate=0.5, seed=3),
])
async def test_idempotent_calls_retry_through_faults(
        sandbox: OptimoveSandbox, client: OptimoveClient, plan: FaultPlan) -> None:
    sandbox.load_audience(TENANT, 3, EMAIL, rows(4))
    sandbox.set_faults(plan)
    for _ in range(3):
        assert len(await client.get_customer_send_details(3, EMAIL)) == 4
    calls = _calls(sandbox, "GetCustomerSendDetailsByChannel")
    faulted = [fault for fault in calls if fault is not None]
    assert faulted and len(calls) == 3 + len(faulted)  # one extra attempt per fault


async def test_lost_response_on_metrics_is_retried_and_applied_once_as_latest(
        sandbox: OptimoveSandbox, client: OptimoveClient) -> None:
    sandbox.set_faults(FaultPlan(lost_response_rate=0.5, seed=1,
                                 functions=frozenset({"UpdateCampaignMetrics"})))
    for total in (5, 9):
        await client.update_campaign_metrics([CampaignMetric(
            channel_id=EMAIL, campaign_id=3, template_id=11, metric_id=Metric.SENT,
            metric_value=total)])
    assert sandbox.metrics(TENANT) == {(3, EMAIL, 11, 0): 9}
    assert "lost_response" in _calls(sandbox, "UpdateCampaignMetrics")


async def test_server_error_after_all_attempts(sandbox: OptimoveSandbox,
                                               client: OptimoveClient) -> None:
    sandbox.set_faults(FaultPlan(error_rate=1.0))
    with pytest.raises(OptimoveServerError, match="GetExecutionChannels"):
        await client.get_execution_channels()
    assert len(_calls(sandbox, "GetExecutionChannels")) == FAST_RETRY.attempts


@pytest.mark.parametrize(("plan", "error", "applied"), [
    (FaultPlan(error_rate=1.0), OptimoveOutcomeUnknown, False),
    (FaultPlan(rate_limit_rate=1.0), OptimoveRateLimited, False),
    (FaultPlan(lost_response_rate=1.0), OptimoveOutcomeUnknown, True),
])
async def test_interactions_are_never_retried(
        sandbox: OptimoveSandbox, client: OptimoveClient, plan: FaultPlan,
        error: type[Exception], applied: bool) -> None:
    sandbox.set_faults(plan)
    with pytest.raises(error, match="UpdateCampaignInteractions"):
        await client.update_campaign_interactions(_batch())
    entries = [e for e in sandbox.journal(TENANT) if e.function == "UpdateCampaignInteractions"]
    assert len(entries) == 1
    assert entries[0].applied is applied
    assert len(sandbox.reported_interactions(TENANT)) == (2 if applied else 0)


async def test_interactions_timeout_is_outcome_unknown(sandbox: OptimoveSandbox,
                                                       server: RunningServer) -> None:
    sandbox.set_faults(FaultPlan(slow_seconds=0.5))
    async with OptimoveClient(server.url, KEY, limiter=SlidingWindowLimiter(100, 1.0),
                              retry=FAST_RETRY, timeout=0.1) as client:
        with pytest.raises(OptimoveOutcomeUnknown, match="ReadTimeout"):
            await client.update_campaign_interactions(_batch("t1"))
    # It did land: exactly why the caller must read back before sending it again.
    assert [r.customer_id for r in sandbox.reported_interactions(TENANT)] == ["t1"]
    assert len(sandbox.journal(TENANT)) == 1


async def test_interactions_read_back_after_outcome_unknown(
        sandbox: OptimoveSandbox, client: OptimoveClient) -> None:
    sandbox.set_faults(FaultPlan(lost_response_rate=1.0,
                                 functions=frozenset({"UpdateCampaignInteractions"})))
    with pytest.raises(OptimoveOutcomeUnknown):
        await client.update_campaign_interactions(_batch("r1"))
    held = await client.get_customer_channel_interactions("r1", date(2026, 3, 1),
                                                          date(2026, 3, 3), EMAIL)
    assert [(h.campaign_id, h.template_id, h.event_id, h.date) for h in held] == [
        (3, 11, 2, date(2026, 3, 2))]


async def test_connect_error_is_unavailable() -> None:
    port = free_port()  # nobody listens here
    async with OptimoveClient(f"http://127.0.0.1:{port}", KEY,
                              limiter=SlidingWindowLimiter(100, 1.0), retry=FAST_RETRY) as client:
        with pytest.raises(OptimoveUnavailable, match="UpdateCampaignInteractions"):
            await client.update_campaign_interactions(_batch())
        with pytest.raises(OptimoveUnavailable, match="GetExecutionChannels"):
            await client.get_execution_channels()


async def test_auth_and_rejection_are_not_retried(sandbox: OptimoveSandbox,
                                                  server: RunningServer,
                                                  client: OptimoveClient) -> None:
    async with OptimoveClient(server.url, "wrong-key", limiter=SlidingWindowLimiter(100, 1.0),
                              retry=FAST_RETRY) as stranger:
        with pytest.raises(OptimoveAuthError) as caught:
            await stranger.get_execution_channels()
    assert caught.value.status == 401
    with pytest.raises(OptimoveRequestRejected) as rejected:
        await client.get_channel_templates(999)  # not an execution channel of the tenant
    body = rejected.value.body
    assert rejected.value.status == 400 and body is not None and "ChannelID" in body
    assert len(sandbox.journal()) == 2


def _mock(body: bytes, status: int = 200) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, content=body))


@pytest.mark.parametrize("body", [b"", b"null", b'{"ResponseCode":200}', b"{}"])
async def test_void_calls_accept_empty_answers(body: bytes) -> None:
    async with OptimoveClient("http://optimove.test", KEY, transport=_mock(body),
                              limiter=SlidingWindowLimiter(100, 1.0)) as client:
        await client.update_campaign_interactions(_batch())
        await client.register_event_listener(13, "https://example.com/l", EMAIL)
    # The calls returned: no exception is the behaviour under test.
    assert client._http.is_closed


@pytest.mark.parametrize("body", [b'"Error: something"', b"<html>oops</html>"])
async def test_unusable_200_bodies_name_the_call(body: bytes) -> None:
    async with OptimoveClient("http://optimove.test", KEY, transport=_mock(body),
                              limiter=SlidingWindowLimiter(100, 1.0)) as client:
        with pytest.raises(OptimoveUnexpectedResponse, match="RegisterEventListener"):
            await client.register_event_listener(13, "https://example.com/l")
        with pytest.raises(OptimoveUnexpectedResponse, match="GetExecutionChannels"):
            await client.get_execution_channels()
        with pytest.raises(OptimoveOutcomeUnknown, match="UpdateCampaignInteractions"):
            await client.update_campaign_interactions(_batch())


async def test_api_key_never_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    secret = "super-secret-key-do-not-leak"
    transport = httpx.MockTransport(lambda request: httpx.Response(503, text="busy"))
    caplog.set_level(logging.DEBUG)
    async with OptimoveClient("http://optimove.test", secret, transport=transport,
                              limiter=SlidingWindowLimiter(100, 1.0), retry=FAST_RETRY) as client:
        with pytest.raises(OptimoveServerError) as caught:
            await client.get_execution_channels()
    assert caplog.records  # the retries were logged
    assert secret not in str(caught.value) and secret not in caplog.text


def test_fault_plan_checks_its_input() -> None:
    with pytest.raises(ValueError, match="unknown Functions"):
        OptimoveSandbox({KEY: TENANT}, faults=FaultPlan(
            error_rate=1.0, functions=frozenset({"UpdateCampaignInteraction"})))
    with pytest.raises(ValueError, match="add up"):
        FaultPlan(error_rate=0.6, rate_limit_rate=0.6)


async def test_rows_of_the_wrong_shape_name_the_call() -> None:
    body = b'[{"ChannelID": "not a number", "ChannelName": "Email"}]'
    async with OptimoveClient("http://optimove.test", KEY, transport=_mock(body),
                              limiter=SlidingWindowLimiter(100, 1.0)) as client:
        with pytest.raises(OptimoveUnexpectedResponse, match=r"GetExecutionChannels.*ChannelID"):
            await client.get_execution_channels()
        with pytest.raises(ValueError, match="free of ';'"):
            await client.get_customer_send_details(1, EMAIL, attributes=["a;b"])


@pytest.mark.parametrize(("body", "problem"), [
    (b"<html>busy</html>", "not JSON"),
    (b'{"rows": []}', "expected a JSON array"),
    (b'[{"CustomerID": "C1", "TemplateID": 7}]', r"0\.ScheduledTime: Field required"),
    (b'[{"CustomerID": "C1", "TemplateID": 7, "ScheduledTime": "2030-01-01 00:00:00"}, 7]',
     r"1: Input should be an object"),
    (b'[{"CustomerID": null, "TemplateID": 7, "ScheduledTime": "2030-01-01 00:00:00"}]',
     r"0\.CustomerID"),
])
async def test_audience_pages_that_do_not_fit_say_where(body: bytes, problem: str) -> None:
    async with OptimoveClient("http://optimove.test", KEY, transport=_mock(body),
                              limiter=SlidingWindowLimiter(100, 1.0)) as client:
        with pytest.raises(OptimoveUnexpectedResponse,
                           match=rf"GetCustomerSendDetailsByChannel.*{problem}"):
            await client.get_customer_send_details(1, EMAIL)


async def test_audience_rows_are_read_leniently_where_optimove_varies() -> None:
    body = (b'[{"CustomerID": 12, "TemplateID": "7", "ScheduledTime": "2030-01-01T02:00:00+02:00",'
            b' "CustomerAttributes": ["a@x.com", 5, null], "Unknown": 1},'
            b' {"CustomerID": "C2", "TemplateID": 7, "ScheduledTime": "2030-01-01 00:00:00",'
            b' "CustomerAttribute": "b@x.com;Bo"}]')
    async with OptimoveClient("http://optimove.test", KEY, transport=_mock(body),
                              limiter=SlidingWindowLimiter(100, 1.0)) as client:
        first, second = await client.get_customer_send_details(
            1, EMAIL, attributes=["Email", "Age", "Name"])
    assert first == ("12", 7, dt.datetime(2030, 1, 1), ("a@x.com", "5", None))
    assert second.attributes == ("b@x.com", "Bo", None)
