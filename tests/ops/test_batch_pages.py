"""The report batch views of /ui: the tenant's batches by state and campaign, and one
batch with its calls."""

from __future__ import annotations

import asyncio
import re

import httpx

from optibridge.demo import EMAIL_CAMPAIGN, TENANT, Rehearsal
from optibridge.domain import BatchState, ReportBatchRecord
from optibridge.store import Database, Store


async def sent_batches(url: str) -> list[ReportBatchRecord]:
    store = Store(Database(url))
    try:
        return await store.batches(TENANT, [BatchState.SENT], 1000)
    finally:
        await store.db.dispose()


def test_batch_pages_list_and_show_the_reported_batches(settled: Rehearsal) -> None:
    url = settled.service_url
    sent = asyncio.run(sent_batches(settled.config.server.database_url))
    assert sent
    overview = httpx.get(f"{url}/ui").text
    assert f'href="/ui/batches?tenant={TENANT}&amp;state=sent"' in overview
    listed = httpx.get(f"{url}/ui/batches", params={"tenant": TENANT, "state": "sent",
                                                    "campaign": EMAIL_CAMPAIGN})
    assert listed.status_code == 200
    shown = {int(i) for i in re.findall(r'data-batch="(\d+)"', listed.text)}
    email = {b.id for b in sent if b.campaign_id == EMAIL_CAMPAIGN}
    assert shown == set(sorted(email)[:100]) and shown
    none = httpx.get(f"{url}/ui/batches", params={"tenant": TENANT, "state": "dead_letter"})
    assert "data-batch=" not in none.text and "dead_letter 0" in none.text
    first = min(email)
    page = httpx.get(f"{url}/ui/batches/{first}")
    assert page.status_code == 200 and f"Report batch {first}" in page.text
    events = re.search(r'<table class="grid" id="events">(.*?)</table>', page.text, re.S)
    assert events is not None and "<td>call</td>" in events.group(1)
    assert "<td>sent</td>" in events.group(1)
    assert httpx.get(f"{url}/ui/batches/99999999").status_code == 404
    assert httpx.get(f"{url}/ui/batches", params={"tenant": "nobody"}).status_code == 404
