"""The sandbox over real HTTP: auth, verbs, validation, every Function through the client."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from optibridge.optimove import OptimoveClient, OptimoveServerError
from optibridge.optimove.models import (
    AttributeValue,
    CampaignInteractions,
    CampaignMetric,
    ChannelTemplate,
    CustomerAttributesUpdate,
    EventListener,
    InteractionEvent,
    Metric,
)
from optibridge.sandbox.optimove import AudienceRow, FaultPlan, OptimoveSandbox
from optibridge.serving import RunningServer, serving

from .conftest import EMAIL, KEY, OTHER, OTHER_KEY, TENANT


@pytest.fixture
async def raw(server: RunningServer) -> Any:
    async with httpx.AsyncClient(base_url=server.url, headers={"X-API-KEY": KEY}) as http:
        yield http


async def test_missing_or_unknown_key_is_401(sandbox: OptimoveSandbox, server: RunningServer
                                             ) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        missing = await http.get("/current/actions/GetExecutionChannels")
        unknown = await http.get("/current/actions/GetExecutionChannels",
                                 headers={"X-API-KEY": "nope"})
    assert missing.status_code == unknown.status_code == 401
    assert missing.json()["field"] == "X-API-KEY"
    assert [(e.tenant, e.status) for e in sandbox.journal()] == [(None, 401), (None, 401)]


async def test_wrong_verb_is_405_and_unknown_function_404(raw: httpx.AsyncClient) -> None:
    wrong = await raw.post("/current/actions/GetExecutionChannels", json={})
    assert (wrong.status_code, wrong.json()) == (405, "Method Not Allowed")
    assert (await raw.get("/current/integrations/UpdateCampaignInteractions")).status_code == 405
    assert (await raw.get("/current/actions/NoSuchFunction")).status_code == 404
    assert (await raw.get("/current/general/GetExecutionChannels")).status_code == 404


async def test_invalid_json_and_field_errors_are_400(sandbox: OptimoveSandbox,
                                                     raw: httpx.AsyncClient) -> None:
    path = "/current/integrations/UpdateCampaignInteractions"
    broken = await raw.post(path, content=b"{not json")
    assert (broken.status_code, broken.json()["field"]) == (400, "body")
    good = {"CampaignID": 1, "ChannelID": EMAIL, "InteractionDate": "2026-03-02",
            "TemplateID": 1, "EventID": 2, "CustomerIDs": ["a"]}
    cases: list[tuple[dict[str, Any], str]] = [
                          ({"InteractionDate": None}, "InteractionDate"),
                          ({"InteractionDate": "02/03/2026"}, "InteractionDate"),
                          ({"EventID": 7}, "EventID"), ({"CampaignID": "1"}, "CampaignID"),
                          ({"CustomerIDs": []}, "CustomerIDs"), ({"CustomerIDs": [""]},
                                                                 "CustomerIDs"),
                          ({"TemplateID": True}, "TemplateID"), ({"Extra": 1}, "Extra"),
                          ({"ChannelID": 77}, "ChannelID")]
    for change, field in cases:
        answer = await raw.post(path, json={**good, **change})
        assert (answer.status_code, answer.json()["field"]) == (400, field), change
    assert sandbox.reported_interactions(TENANT) == []
    assert (await raw.post(path, json=good)).status_code == 200
    assert len(sandbox.reported_interactions(TENANT)) == 1


async def test_query_validation(raw: httpx.AsyncClient) -> None:
    path = "/current/customers/GetCustomerSendDetailsByChannel"
    cases: list[tuple[dict[str, Any], str]] = [
                          ({"ChannelID": EMAIL}, "CampaignID"),
                          ({"CampaignID": 1, "ChannelID": "x"}, "ChannelID"),
                          ({"CampaignID": 1, "ChannelID": EMAIL, "$top": 0}, "$top"),
                          ({"CampaignID": 1, "ChannelID": EMAIL, "$top": 100_001}, "$top"),
                          ({"CampaignID": 1, "ChannelID": EMAIL, "$skip": -1}, "$skip"),
                          ({"CampaignID": 1, "ChannelID": EMAIL, "Bogus": 1}, "Bogus"),
                          ({"CampaignID": 1, "ChannelID": EMAIL,
                            "CustomerAttributesDelimiter": "|"}, "CustomerAttributesDelimiter")]
    for params, field in cases:
        answer = await raw.get(path, params=params)
        assert (answer.status_code, answer.json()["field"]) == (400, field), params


async def test_interactions_add_up_and_read_back(sandbox: OptimoveSandbox,
                                                 client: OptimoveClient) -> None:
    batch = CampaignInteractions(campaign_id=42, channel_id=EMAIL,
                                 interaction_date=date(2026, 3, 2), template_id=7,
                                 event_id=InteractionEvent.CLICKED, recipient_group_id=2,
                                 customer_ids=("u1", "u2"))
    await client.update_campaign_interactions(batch)
    await client.update_campaign_interactions(batch.model_copy(update={"customer_ids": ("u1",)}))
    counts = sandbox.interaction_counts(TENANT)
    assert counts[(42, EMAIL, 7, 3, 2, date(2026, 3, 2), "u1")] == 2
    assert counts[(42, EMAIL, 7, 3, 2, date(2026, 3, 2), "u2")] == 1
    back = await client.get_customer_channel_interactions("u1", date(2026, 3, 1),
                                                          date(2026, 3, 2))
    assert len(back) == 2
    assert {(b.campaign_id, b.recipient_group_id, b.template_id, b.event_id) for b in back} == {
        (42, 2, 7, 3)}
    assert back[0].action_id == back[1].action_id is not None
    assert await client.get_customer_channel_interactions(
        "u1", date(2026, 3, 3), date(2026, 3, 9)) == []
    assert await client.get_customer_channel_interactions(
        "u1", date(2026, 3, 1), date(2026, 3, 2), channel_id=505) == []
    assert sandbox.reported_interactions(OTHER) == []  # tenants are separate


async def test_metrics_keep_the_latest_total(sandbox: OptimoveSandbox,
                                             client: OptimoveClient) -> None:
    def metric(value: int) -> CampaignMetric:
        return CampaignMetric(channel_id=EMAIL, campaign_id=42, template_id=7,
                              metric_id=Metric.DELIVERED, metric_value=value)
    await client.update_campaign_metrics([metric(3)])
    await client.update_campaign_metrics([metric(8)])
    assert sandbox.metrics(TENANT) == {(42, EMAIL, 7, 1): 8}


async def test_templates_round_trip(sandbox: OptimoveSandbox, client: OptimoveClient) -> None:
    await client.add_channel_templates(EMAIL, [ChannelTemplate(template_id=1, template_name="A"),
                                               ChannelTemplate(template_id=2, template_name="B")])
    await client.add_channel_templates(EMAIL, [ChannelTemplate(template_id=2, template_name="B2")])
    await client.delete_channel_templates(EMAIL, [1])
    assert sandbox.channel_templates(TENANT, EMAIL) == {2: "B2"}
    assert await client.get_channel_templates(EMAIL) == [
        ChannelTemplate(template_id=2, template_name="B2")]


async def test_listeners_replace_and_accept_encoded_urls(sandbox: OptimoveSandbox,
                                                         client: OptimoveClient) -> None:
    await client.register_event_listener(13, "https%3A%2F%2Fold.example.com%2Fhook", EMAIL)
    await client.register_event_listener(13, "https://new.example.com/hook", EMAIL)
    await client.register_event_listener(1, "https://new.example.com/any")
    expected = [EventListener(event_type_id=1, listener_url="https://new.example.com/any"),
                EventListener(event_type_id=13, listener_url="https://new.example.com/hook",
                              channel_id=EMAIL)]
    assert await client.get_registered_event_listeners() == expected
    assert [(item.event_type_id, item.listener_url, item.channel_id)
            for item in sandbox.listeners(TENANT)] == [
        (item.event_type_id, item.listener_url, item.channel_id) for item in expected]
    await client.unregister_event_listener(1)
    assert [item.event_type_id for item in sandbox.listeners(TENANT)] == [13]


async def test_preferences_and_attributes(sandbox: OptimoveSandbox,
                                          client: OptimoveClient) -> None:
    await client.set_customer_channel_preference(EMAIL, ["a", "b"], 2, app_id="app1")
    await client.set_customer_channel_preference(EMAIL, ["a"], 1, app_id="app1")
    modes = {(p.customer_id, p.communication_mode) for p in sandbox.preferences(TENANT)}
    assert modes == {("a", 1), ("b", 2)}
    await client.add_customer_attribute("Email_Opt_In", "VARCHAR(10)", default_value="no")
    await client.update_customer_attributes([CustomerAttributesUpdate(
        customer_id="a", attributes=(AttributeValue(real_field_name="Email_Opt_In",
                                                    value="yes"),))])
    assert sandbox.defined_attributes(TENANT)["Email_Opt_In"].type == "VARCHAR(10)"
    assert sandbox.customer_attributes(TENANT) == {"a": {"Email_Opt_In": "yes"}}
    channels = await client.get_execution_channels()
    assert {c.channel_id: c.channel_name for c in channels}[EMAIL] == "Email"


@pytest.fixture
def listener() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        received.append(await request.json())
        return Response(status_code=202)

    with serving(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as running:
        yield running.url + "/hook", received


async def test_notify_posts_to_matching_listeners(
        sandbox: OptimoveSandbox, client: OptimoveClient,
        listener: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = listener
    await client.register_event_listener(13, url, EMAIL)
    await client.register_event_listener(13, url, 505)
    statuses = sandbox.notify(TENANT, 13, campaign_id=42, channel_id=EMAIL,
                              extra={"Note": "x"})
    assert statuses == [202]
    assert sandbox.notify(TENANT, 1, campaign_id=42) == []  # nobody listens to 1
    assert len(received) == 1
    event = received[0]
    assert (event["EventTypeID"], event["CampaignID"], event["ChannelID"], event["Note"]) == (
        13, 42, EMAIL, "x")
    datetime.strptime(event["TimeStamp"], "%Y-%m-%d %H:%M")


async def test_admin_api(sandbox: OptimoveSandbox, server: RunningServer,
                         listener: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = listener
    sandbox_rows = [{"CustomerID": "z1", "TemplateID": 3, "ScheduledTime": "2026-03-01 10:00:00",
                     "Attributes": {"Email": "z1@example.com"}}]
    async with httpx.AsyncClient(base_url=server.url) as admin, \
            httpx.AsyncClient(base_url=server.url, headers={"X-API-KEY": OTHER_KEY}) as api:
        loaded = await admin.post(f"/sandbox/{OTHER}/audiences/5/{EMAIL}", json=sandbox_rows)
        assert loaded.json() == {"loaded": 1, "total": 1}
        pulled = await api.get("/customers/GetCustomerSendDetailsByChannel",
                               params={"CampaignID": 5, "ChannelID": EMAIL,
                                       "CustomerAttributes": "Email"})
        assert pulled.json() == [{"CustomerID": "z1", "TemplateID": 3,
                                  "ScheduledTime": "2026-03-01 10:00:00",
                                  "CustomerAttributes": ["z1@example.com"]}]
        await api.post("/general/RegisterEventListener",
                       json={"EventTypeID": 13, "ListenerURL": url, "ChannelID": EMAIL})
        notified = await admin.post(f"/sandbox/{OTHER}/notify",
                                    json={"EventTypeID": 13, "CampaignID": 5, "ChannelID": EMAIL})
        assert notified.json() == {"statuses": [202]} and len(received) == 1
        journal = (await admin.get(f"/sandbox/{OTHER}/journal")).json()
        assert [e["function"] for e in journal] == ["GetCustomerSendDetailsByChannel",
                                                    "RegisterEventListener"]
        faults = await admin.put("/sandbox/faults", json={"error_rate": 1.0,
                                                          "functions": ["GetExecutionChannels"]})
        assert faults.json()["error_rate"] == 1.0
        assert (await api.get("/actions/GetExecutionChannels")).status_code == 500
        assert (await admin.put("/sandbox/faults", json={"error_rate": 2})).status_code == 400
        await admin.put("/sandbox/faults", json=None)
        assert (await api.get("/actions/GetExecutionChannels")).status_code == 200
        assert (await admin.get("/sandbox/nobody/journal")).status_code == 404
        assert (await admin.get(f"/sandbox/{OTHER}/interactions")).json() == []
    assert sandbox.faults is None


async def test_faults_only_hit_the_named_functions(sandbox: OptimoveSandbox,
                                                   client: OptimoveClient) -> None:
    sandbox.set_faults(FaultPlan(error_rate=1.0, functions=frozenset({"GetChannelTemplates"})))
    assert await client.get_execution_channels()
    entries = sandbox.journal(TENANT)
    assert [(e.function, e.fault) for e in entries] == [("GetExecutionChannels", None)]
    with pytest.raises(OptimoveServerError, match="GetChannelTemplates"):
        await client.get_channel_templates(EMAIL)


async def test_a_million_rows_page_anywhere(sandbox: OptimoveSandbox,
                                            raw: httpx.AsyncClient) -> None:
    """Pages deep into a large audience come back whole; their speed is `bench pull`'s figure."""
    when = datetime(2026, 3, 1, 8)
    sandbox.load_audience(TENANT, 1, EMAIL, (
        AudienceRow(f"m{i}", i % 4, when, {"Email": f"m{i}@example.com", "Name": "Ann"})
        for i in range(1_000_000)))
    params: dict[str, Any] = {"CampaignID": 1, "ChannelID": EMAIL, "$top": 10_000,
              "CustomerAttributes": "Email;Name"}
    for skip in (0, 500_000, 990_000):
        answer = await raw.get("/current/customers/GetCustomerSendDetailsByChannel",
                               params={**params, "$skip": skip})
        page = answer.json()
        assert len(page) == 10_000 and page[0]["CustomerID"] == f"m{skip}"
        assert page[-1]["CustomerAttributes"] == [f"m{skip + 9_999}@example.com", "Ann"]
