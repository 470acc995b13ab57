"""CustomerAttributes come back as a JSON array or as one delimited string: parse both."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from optibridge.optimove import OptimoveClient, parse_attributes
from optibridge.ratelimit import SlidingWindowLimiter
from optibridge.sandbox.optimove import AudienceRow, OptimoveSandbox, create_app
from optibridge.serving import RunningServer, serving

from .conftest import EMAIL, FAST_RETRY, KEY, TENANT


@pytest.mark.parametrize(("raw", "count", "delimiter", "expected"), [
    (["a", "b"], 2, ";", ("a", "b")),
    (["a", None], 2, ";", ("a", None)),
    (["a"], 3, ";", ("a", None, None)),
    ([1, 2.5], 2, ";", ("1", "2.5")),
    ("a;b", 2, ";", ("a", "b")),
    ("a,b,c", 3, ",", ("a", "b", "c")),
    ("a;;c", 3, ";", ("a", "", "c")),
    ("a", 2, ";", ("a", None)),
    (None, 2, ";", (None, None)),
    ("", 2, ";", (None, None)),
    ("", 1, ";", ("",)),
])
def test_parse_attributes(raw: object, count: int, delimiter: str,
                          expected: tuple[str | None, ...]) -> None:
    assert parse_attributes(raw, count, delimiter) == expected


@pytest.fixture
def string_server() -> Iterator[tuple[OptimoveSandbox, RunningServer]]:
    sandbox = OptimoveSandbox({KEY: TENANT}, attributes_as_string=True)
    with serving(create_app(sandbox)) as running:
        yield sandbox, running


@pytest.mark.parametrize("delimiter", [";", ","])
async def test_delimited_string_form_over_http(
        string_server: tuple[OptimoveSandbox, RunningServer], delimiter: str) -> None:
    sandbox, server = string_server

    sandbox.load_audience(TENANT, 5, EMAIL, [
        AudienceRow("x1", 1, datetime(2026, 1, 1), {"Email": "x1@example.com", "Name": "Ann"}),
        AudienceRow("x2", 1, datetime(2026, 1, 1), {"Email": "x2@example.com"}),
    ])
    async with OptimoveClient(server.url, KEY, limiter=SlidingWindowLimiter(100, 1.0),
                              retry=FAST_RETRY) as client:
        details = await client.get_customer_send_details(
            5, EMAIL, attributes=["Name", "Email"], delimiter=delimiter)
    raw = sandbox.journal(TENANT)[-1]
    assert raw.query["CustomerAttributesDelimiter"] == delimiter
    assert [d.attributes for d in details] == [("Ann", "x1@example.com"),
                                               ("", "x2@example.com")]


async def test_array_form_over_http(sandbox: OptimoveSandbox, client: OptimoveClient) -> None:

    sandbox.load_audience(TENANT, 6, EMAIL, [
        AudienceRow("y1", 2, datetime(2026, 1, 1), {"Email": "a;b@example.com", "Name": None}),
    ])
    details = await client.get_customer_send_details(6, EMAIL, attributes=["Email", "Name"])
    # The array form keeps a delimiter inside a value and tells null from "".
    assert details[0].attributes == ("a;b@example.com", None)
