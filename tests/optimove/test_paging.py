"""Audience pull: $top/$skip paging, attributes, path forms."""

from __future__ import annotations

from datetime import datetime

import httpx

from optibridge.optimove import OptimoveClient
from optibridge.ratelimit import SlidingWindowLimiter
from optibridge.sandbox.optimove import OptimoveSandbox
from optibridge.serving import RunningServer

from .conftest import EMAIL, FAST_RETRY, KEY, TENANT, rows


def _skips(sandbox: OptimoveSandbox) -> list[int]:
    return [int(e.query["$skip"]) for e in sandbox.journal(TENANT)
            if e.function == "GetCustomerSendDetailsByChannel"]


async def test_pages_across_boundaries(sandbox: OptimoveSandbox, client: OptimoveClient) -> None:
    loaded = rows(25)
    sandbox.load_audience(TENANT, 7, EMAIL, loaded)
    pages = [page async for page in client.iter_customer_send_details(
        7, EMAIL, attributes=["Email"], page_size=10)]
    assert [(page.skip, len(page.rows)) for page in pages] == [(0, 10), (10, 10), (20, 5)]
    got = [row.customer_id for page in pages for row in page.rows]
    assert got == [row.customer_id for row in loaded]
    # Two pages ahead once the first was full: at most one call past the end.
    assert sorted(_skips(sandbox))[:3] == [0, 10, 20]
    assert set(_skips(sandbox)) <= {0, 10, 20, 30}


async def test_one_page_audience_costs_one_call(sandbox: OptimoveSandbox,
                                                client: OptimoveClient) -> None:
    sandbox.load_audience(TENANT, 9, EMAIL, rows(7))
    pages = [page async for page in client.iter_customer_send_details(9, EMAIL, page_size=10)]
    assert [(page.skip, len(page.rows)) for page in pages] == [(0, 7)]
    assert _skips(sandbox) == [0]


async def test_pages_come_in_order_whichever_answer_comes_first(
        sandbox: OptimoveSandbox, client: OptimoveClient) -> None:
    loaded = rows(95)
    sandbox.load_audience(TENANT, 10, EMAIL, loaded)
    pages = [page async for page in client.iter_customer_send_details(
        10, EMAIL, page_size=10, ahead=4)]
    assert [page.skip for page in pages] == list(range(0, 100, 10))
    assert [row.customer_id for page in pages for row in page.rows] == [
        row.customer_id for row in loaded]
    assert set(_skips(sandbox)) <= set(range(0, 130, 10))  # ahead - 1 past the end


async def test_exact_multiple_needs_one_empty_page(sandbox: OptimoveSandbox,
                                                   client: OptimoveClient) -> None:
    sandbox.load_audience(TENANT, 8, EMAIL, rows(20))
    pages = [page async for page in client.iter_customer_send_details(8, EMAIL, page_size=10)]
    assert [(page.skip, len(page.rows)) for page in pages] == [(0, 10), (10, 10)]
    # The third, empty page ends the pull; the fourth was on its way already.
    assert sorted(_skips(sandbox))[:3] == [0, 10, 20]
    assert set(_skips(sandbox)) <= {0, 10, 20, 30}


async def test_resume_from_start_skip(sandbox: OptimoveSandbox, client: OptimoveClient) -> None:
    sandbox.load_audience(TENANT, 9, EMAIL, rows(12))
    pages = [page async for page in client.iter_customer_send_details(
        9, EMAIL, page_size=5, start_skip=5)]
    assert [page.skip for page in pages] == [5, 10]
    assert [row.customer_id for page in pages for row in page.rows] == [
        f"c{i}" for i in range(5, 12)]


async def test_unknown_campaign_is_empty(sandbox: OptimoveSandbox, client: OptimoveClient) -> None:
    assert [page async for page in client.iter_customer_send_details(404, EMAIL)] == []
    assert await client.get_customer_send_details(404, EMAIL) == []


async def test_row_fields_and_attribute_order(sandbox: OptimoveSandbox,
                                              client: OptimoveClient) -> None:
    sandbox.load_audience(TENANT, 10, EMAIL, rows(2, template=33))
    details = await client.get_customer_send_details(
        10, EMAIL, attributes=["Country", "Missing", "Email"], top=5)
    first = details[0]
    assert (first.customer_id, first.template_id) == ("c0", 33)
    assert first.scheduled_time == datetime(2026, 3, 1, 9, 30)
    assert first.attributes == ("UA", None, "c0@example.com")
    query = sandbox.journal(TENANT)[-1].query
    assert query["CustomerAttributes"] == "Country;Missing;Email"
    assert query["CustomerAttributesDelimiter"] == ";"


async def test_both_path_forms_and_category_case(sandbox: OptimoveSandbox,
                                                 server: RunningServer) -> None:
    sandbox.load_audience(TENANT, 11, EMAIL, rows(3))
    async with OptimoveClient(server.url, KEY, path_prefix="",
                              limiter=SlidingWindowLimiter(100, 1.0),
                              retry=FAST_RETRY) as bare:
        assert len(await bare.get_customer_send_details(11, EMAIL)) == 3
    async with httpx.AsyncClient(base_url=server.url, headers={"X-API-KEY": KEY}) as raw:
        upper = await raw.get("/Customers/GetCustomerSendDetailsByChannel",
                              params={"CampaignID": 11, "ChannelID": EMAIL})
        classic = await raw.get("/current/customers/getcustomersenddetailsbychannel",
                                params={"CampaignID": 11, "ChannelID": EMAIL})
    assert upper.status_code == classic.status_code == 200
    assert upper.json() == classic.json()
    assert [e.path for e in sandbox.journal(TENANT)] == [
        "/customers/GetCustomerSendDetailsByChannel",
        "/Customers/GetCustomerSendDetailsByChannel",
        "/current/customers/getcustomersenddetailsbychannel"]
