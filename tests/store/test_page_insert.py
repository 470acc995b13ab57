"""An audience page's recipients are stored as they came, every character: PostgreSQL
takes a page by COPY, whose text format escapes what is special to it. (A page repeating
an earlier page's customer, where COPY fails on the unique key and the page goes through
INSERT ... ON CONFLICT instead: tests/store/test_address_once.py.)"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from optibridge.domain import AudienceEntry, fields_json
from optibridge.store import open_store
from optibridge.store.schema import Recipient

WHEN = dt.datetime(2026, 11, 20, 10)
AWKWARD = ["tab\there", "line\nbreak", "back\\slash", "\\N", "carriage\rreturn",
           "Zoë 東京 🚀", "", "end\\"]


async def test_every_character_of_a_page_is_stored_as_it_came(database_url: str) -> None:
    store = await open_store(database_url)
    campaign, _ = await store.open_campaign("t", 7, 504)
    page = [AudienceEntry(f"C{i}\t{text}", 1, WHEN, f"c{i}@example.com",
                          fields_json({"FirstName": text, "Note": f"{text}\\{text}"}))
            for i, text in enumerate(AWKWARD)]
    page.append(AudienceEntry("no-address", 1, WHEN, None, None))
    try:
        assert await store.store_audience_page(campaign.id, "email", 0, page, True)
        async with store.db.read() as session:
            stored = (await session.execute(select(
                Recipient.customer_id, Recipient.address, Recipient.fields
            ).order_by(Recipient.id))).all()
        assert [tuple(row) for row in stored] == [
            (e.customer_id, e.address, e.fields) for e in page]
    finally:
        await store.db.dispose()

