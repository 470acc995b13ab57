"""Every documented batch limit: the client refuses before sending, the sandbox answers 400."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import httpx
import pytest

from optibridge.optimove import BatchTooLarge, EmptyBatch, OptimoveClient
from optibridge.optimove.models import (
    AttributeValue,
    CampaignInteractions,
    CampaignMetric,
    ChannelTemplate,
    CustomerAttributesUpdate,
    InteractionEvent,
    Metric,
)
from optibridge.sandbox.optimove import OptimoveSandbox
from optibridge.serving import RunningServer

from .conftest import EMAIL, KEY, TENANT

Call = Callable[[OptimoveClient], Awaitable[None]]


def _interactions(count: int) -> CampaignInteractions:
    return CampaignInteractions(
        campaign_id=1, channel_id=EMAIL, interaction_date=date(2026, 3, 2), template_id=1,
        event_id=InteractionEvent.CLICKED, customer_ids=tuple(f"c{i}" for i in range(count)))


def _metrics(count: int) -> list[CampaignMetric]:
    return [CampaignMetric(channel_id=EMAIL, campaign_id=1, template_id=i, metric_id=Metric.SENT,
                           metric_value=1) for i in range(count)]


def _updates(customers: int, attributes: int) -> list[CustomerAttributesUpdate]:
    values = tuple(AttributeValue(real_field_name=f"A{i}", value=i) for i in range(attributes))
    return [CustomerAttributesUpdate(customer_id=f"c{i}", attributes=values)
            for i in range(customers)]


CLIENT_CASES: list[tuple[str, Call, str]] = [
    ("UpdateCampaignInteractions",
     lambda c: c.update_campaign_interactions(_interactions(10_001)), "10001 .* limit is 10000"),
    ("UpdateCampaignMetrics", lambda c: c.update_campaign_metrics(_metrics(101)),
     "101 .* limit is 100"),
    ("AddChannelTemplates", lambda c: c.add_channel_templates(EMAIL, [
        ChannelTemplate(template_id=i, template_name=f"t{i}") for i in range(101)]),
     "101 .* limit is 100"),
    ("DeleteChannelTemplates", lambda c: c.delete_channel_templates(EMAIL, list(range(101))),
     "101 .* limit is 100"),
    ("SetCustomerChannelPreference", lambda c: c.set_customer_channel_preference(
        EMAIL, [f"c{i}" for i in range(50_001)], 2), "50001 .* limit is 50000"),
    ("UpdateCustomerAttributes", lambda c: c.update_customer_attributes(_updates(1_001, 1)),
     "1001 customers .* limit is 1000"),
    ("UpdateCustomerAttributes", lambda c: c.update_customer_attributes(
        _updates(6, 1), max_customers=5), "6 customers .* limit is 5"),
    ("UpdateCustomerAttributes", lambda c: c.update_customer_attributes(_updates(1, 11)),
     "11 attributes .* limit is 10"),
]


@pytest.mark.parametrize(("function", "call", "message"), CLIENT_CASES,
                         ids=[f"{case[0]}-{i}" for i, case in enumerate(CLIENT_CASES)])
async def test_client_refuses_before_sending(sandbox: OptimoveSandbox, client: OptimoveClient,
                                             function: str, call: Call, message: str) -> None:
    with pytest.raises(BatchTooLarge, match=f"{function}: {message}"):
        await call(client)
    assert sandbox.journal() == []


async def test_empty_report_batch_is_refused(sandbox: OptimoveSandbox,
                                             client: OptimoveClient) -> None:
    with pytest.raises(EmptyBatch, match="UpdateCampaignInteractions"):
        await client.update_campaign_interactions(_interactions(0))
    with pytest.raises(ValueError, match="max_customers"):
        await client.update_customer_attributes(_updates(1, 1), max_customers=10_001)
    assert sandbox.journal() == []


async def test_limits_themselves_are_accepted(sandbox: OptimoveSandbox,
                                              client: OptimoveClient) -> None:
    await client.update_campaign_interactions(_interactions(10_000))
    await client.update_campaign_metrics(_metrics(100))
    await client.set_customer_channel_preference(EMAIL, [f"p{i}" for i in range(50_000)], 2)
    await client.update_customer_attributes(_updates(1_000, 10))
    assert len(sandbox.reported_interactions(TENANT)) == 10_000
    assert len(sandbox.metrics(TENANT)) == 100
    assert len(sandbox.preferences(TENANT)) == 50_000
    assert len(sandbox.customer_attributes(TENANT)["c999"]) == 10


def _ids(count: int) -> list[str]:
    return [f"c{i}" for i in range(count)]


RAW_CASES: list[tuple[str, dict[str, Any], Any, str]] = [
    ("/integrations/UpdateCampaignInteractions", {}, {
        "CampaignID": 1, "ChannelID": EMAIL, "InteractionDate": "2026-03-02", "TemplateID": 1,
        "EventID": 2, "CustomerIDs": _ids(10_001)}, "CustomerIDs"),
    ("/integrations/UpdateCampaignMetrics", {}, [
        {"ChannelID": EMAIL, "CampaignID": 1, "TemplateID": i, "MetricID": 0, "MetricValue": 1}
        for i in range(101)], "body"),
    ("/integrations/AddChannelTemplates", {"ChannelID": EMAIL}, [
        {"TemplateID": i, "TemplateName": f"t{i}"} for i in range(101)], "body"),
    ("/integrations/DeleteChannelTemplates", {}, [
        {"ChannelID": EMAIL, "TemplateID": i} for i in range(101)], "body"),
    ("/integrations/SetCustomerChannelPreference", {}, {
        "ChannelID": EMAIL, "CustomerIDs": _ids(50_001), "CommunicationMode": 2}, "CustomerIDs"),
    ("/customers/UpdateCustomerAttributes", {}, {"CustomerNewAttributesValuesList": [
        {"CustomerID": f"c{i}", "Attributes": [{"RealFieldName": "A", "Value": 1}]}
        for i in range(10_001)]}, "CustomerNewAttributesValuesList"),
    ("/customers/UpdateCustomerAttributes", {}, {"CustomerNewAttributesValuesList": [
        {"CustomerID": "c1", "Attributes": [{"RealFieldName": f"A{i}", "Value": 1}
                                            for i in range(11)]}]},
     "CustomerNewAttributesValuesList[0].Attributes"),
]


@pytest.mark.parametrize(("path", "params", "body", "field"), RAW_CASES,
                         ids=[f"{case[0].rsplit('/', 1)[1]}-{i}"
                              for i, case in enumerate(RAW_CASES)])
async def test_sandbox_rejects_oversized_batches(sandbox: OptimoveSandbox, server: RunningServer,
                                                 path: str, params: dict[str, Any], body: Any,
                                                 field: str) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers={"X-API-KEY": KEY}) as raw:
        answer = await raw.post("/current" + path, params=params, json=body)
    assert answer.status_code == 400
    assert answer.json()["field"] == field
    assert "at most" in answer.json()["error"]
    entry = sandbox.journal(TENANT)[-1]
    assert (entry.status, entry.applied) == (400, False)
    assert sandbox.reported_interactions(TENANT) == [] and sandbox.metrics(TENANT) == {}
    assert sandbox.preferences(TENANT) == [] and sandbox.customer_attributes(TENANT) == {}
