"""An audience page's recipients as stored: every character kept, and a page whose
customer an earlier page stored adds only the new (PostgreSQL takes pages by COPY and
falls back to INSERT ... ON CONFLICT when a key exists)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from optibridge.domain import AudienceEntry, SendState, fields_json
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


async def test_a_page_repeating_an_earlier_customer_stores_the_rest(
        database_url: str) -> None:
    store = await open_store(database_url)
    campaign, _ = await store.open_campaign("t", 8, 504)
    first = [AudienceEntry(f"C{i}", 1, WHEN, f"c{i}@example.com") for i in range(3)]
    # The last customer of the first page again, first in the second, with a new address.
    second = [AudienceEntry("C2", 1, WHEN, "new@example.com"),
              *(AudienceEntry(f"C{i}", 1, WHEN, f"c{i}@example.com") for i in range(3, 6))]
    try:
        assert await store.store_audience_page(campaign.id, "email", 0, first, False)
        assert await store.store_audience_page(campaign.id, "email", 3, second, True)
        [send] = await store.sends("t", list(SendState))
        uploads = await store.recipients_to_upload(send.id, 0, 100)
        assert [(r.customer_id, r.address) for r in uploads] == [
            (f"C{i}", f"c{i}@example.com") for i in range(6)]  # C2 as first stored
        assert send.recipients == 6
        assert (await store.event_counts("t")).get("dropped") is None
    finally:
        await store.db.dispose()
