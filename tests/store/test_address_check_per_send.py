"""A page's address check asks each of its sends only for the addresses of that send's own
customers: asked for every address of the page, a page of four sends looked each address
up four times (on PostgreSQL a fifth of the 1,000,000-customer campaign's pull)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from optibridge.domain import AudienceEntry, SendState
from optibridge.store import open_store
from tests.store.plans import statements_run

WHEN = dt.datetime(2030, 1, 1)


def _page(start: int, count: int) -> list[AudienceEntry]:
    """Customers alternating between templates 7 and 8: two sends."""
    return [AudienceEntry(f"C{i}", 7 + i % 2, WHEN, f"c{i}@example.com")
            for i in range(start, start + count)]


def _values(parameters: Any) -> list[Any]:
    return list(parameters.values()) if isinstance(parameters, dict) else list(parameters)


async def test_each_send_is_asked_only_for_its_own_customers_addresses(
        database_url: str) -> None:
    store = await open_store(database_url)
    try:
        campaign, _ = await store.open_campaign("t", 1, 504)
        await store.store_audience_page(campaign.id, "email", 0, _page(0, 10), False)
        sends = {s.template_id: s.id
                 for s in await store.sends_being_pulled("t", list(SendState))}
        with statements_run([store.db.write_engine.sync_engine], lambda sql: sql.lstrip()
                            .startswith("SELECT recipient.send_id, recipient.address")) as seen:
            await store.store_audience_page(campaign.id, "email", 10, _page(10, 10), True)
    finally:
        await store.db.dispose()
    asked: dict[int, set[str]] = {}
    for values in (_values(parameters) for _, parameters in seen):
        [addresses] = [json.loads(v) for v in values if isinstance(v, str)]
        for send_id in (v for v in values if isinstance(v, int)):
            asked.setdefault(send_id, set()).update(addresses)
    assert asked == {sends[7]: {f"c{i}@example.com" for i in range(10, 20, 2)},
                     sends[8]: {f"c{i}@example.com" for i in range(11, 20, 2)}}
