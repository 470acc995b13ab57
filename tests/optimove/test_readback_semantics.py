"""The sandbox's settings for GetCustomerChannelInteractions' undocumented semantics, and
the revoked-key fault, over real HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest

from optibridge.optimove import OptimoveClient
from optibridge.optimove.errors import OptimoveAuthError
from optibridge.optimove.models import CampaignInteractions, InteractionEvent
from optibridge.sandbox.optimove import AudienceRow, FaultPlan, OptimoveSandbox
from optibridge.serving import RunningServer
from tests.optimove.conftest import EMAIL, KEY, TENANT

SENT = dt.datetime(2026, 3, 1, 23, 50)
DAY1, DAY2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)


async def report(client: OptimoveClient, day: dt.date, customers: tuple[str, ...]) -> None:
    await client.update_campaign_interactions(CampaignInteractions(
        campaign_id=7, channel_id=EMAIL, interaction_date=day, template_id=11,
        event_id=InteractionEvent.OPENED, customer_ids=customers))


async def dates(client: OptimoveClient, customer: str, start: dt.date, end: dt.date
                ) -> list[dt.date]:
    rows = await client.get_customer_channel_interactions(customer, start, end, EMAIL)
    return [row.date for row in rows]


async def test_defaults_show_every_call_at_once_on_its_interaction_date(
        client: OptimoveClient) -> None:
    await report(client, DAY2, ("a",))
    await report(client, DAY2, ("a",))
    assert await dates(client, "a", DAY2, DAY2) == [DAY2, DAY2]
    assert await dates(client, "a", DAY1, DAY1) == []


async def test_a_delayed_read_back_shows_the_call_only_later(
        sandbox: OptimoveSandbox, client: OptimoveClient) -> None:
    sandbox.set_faults(FaultPlan(readback_delay_seconds=0.5))
    await report(client, DAY2, ("a",))
    assert await dates(client, "a", DAY2, DAY2) == []
    await asyncio.sleep(0.6)
    assert await dates(client, "a", DAY2, DAY2) == [DAY2]


async def test_distinct_rows_show_repeated_calls_once(sandbox: OptimoveSandbox,
                                                      client: OptimoveClient) -> None:
    sandbox.set_faults(FaultPlan(readback_rows="distinct"))  # type: ignore[arg-type]
    await report(client, DAY2, ("a",))
    await report(client, DAY2, ("a",))
    assert await dates(client, "a", DAY2, DAY2) == [DAY2]
    assert len(sandbox.reported_interactions(TENANT)) == 2  # both calls still count


async def test_send_date_filter_finds_a_later_event_by_its_send_date(
        sandbox: OptimoveSandbox, client: OptimoveClient) -> None:
    sandbox.load_audience(TENANT, 7, EMAIL, [AudienceRow("a", 11, SENT, {})])
    sandbox.set_faults(FaultPlan(readback_date="send"))  # type: ignore[arg-type]
    await report(client, DAY2, ("a",))  # opened after midnight, sent the day before
    assert await dates(client, "a", DAY2, DAY2) == []
    assert await dates(client, "a", DAY1, DAY1) == [DAY1]


async def test_a_revoked_key_is_refused_for_a_while_then_works(
        sandbox: OptimoveSandbox, client: OptimoveClient) -> None:
    sandbox.set_faults(FaultPlan(auth_failure_status=401, auth_failure_seconds=0.5))
    with pytest.raises(OptimoveAuthError) as refused:
        await report(client, DAY2, ("a",))
    assert refused.value.status == 401 and sandbox.reported_interactions(TENANT) == []
    await asyncio.sleep(0.6)
    await report(client, DAY2, ("a",))
    assert len(sandbox.reported_interactions(TENANT)) == 1


async def test_the_read_back_alone_can_be_refused(sandbox: OptimoveSandbox,
                                                  client: OptimoveClient) -> None:
    sandbox.set_faults(FaultPlan(auth_failure_status=403, auth_failure_functions=frozenset(
        {"GetCustomerChannelInteractions"})))
    await report(client, DAY2, ("a",))
    with pytest.raises(OptimoveAuthError) as refused:
        await dates(client, "a", DAY2, DAY2)
    assert refused.value.status == 403
    assert [e.fault for e in sandbox.journal(TENANT)] == [None, "auth"]


async def test_the_admin_api_sets_and_shows_the_read_back_settings(
        sandbox: OptimoveSandbox, server: RunningServer) -> None:
    plan = {"readback_delay_seconds": 2, "readback_rows": "distinct", "readback_date": "send",
            "auth_failure_status": 403, "auth_failure_seconds": 30,
            "auth_failure_functions": ["GetCustomerChannelInteractions"]}
    async with httpx.AsyncClient(base_url=server.url) as admin:
        shown = (await admin.put("/sandbox/faults", json=plan)).json()
        assert {key: shown[key] for key in plan} == {
            **plan, "readback_delay_seconds": 2.0, "auth_failure_seconds": 30.0,
            "auth_failure_functions": ["getcustomerchannelinteractions"]}
        for wrong in ({"readback_rows": "some"}, {"readback_date": "today"},
                      {"auth_failure_status": 500}, {"readback_delay_seconds": -1}):
            answer = await admin.put("/sandbox/faults", json=wrong)
            assert answer.status_code == 400, wrong
    assert sandbox.faults is not None and sandbox.faults.readback_delay_seconds == 2.0
    assert OptimoveSandbox({KEY: TENANT}).faults is None  # defaults stay as before
