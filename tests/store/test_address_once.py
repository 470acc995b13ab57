"""A send's address is one recipient's, and a customer is stored once: migration 0018
resolves the sends that broke that (triggered sends did not check) as the pull does."""

from __future__ import annotations

import datetime as dt

from alembic import command
from sqlalchemy import create_engine, text

from optibridge.domain import AudienceEntry, Event, InboxItem, SendState
from optibridge.store import open_store
from optibridge.store.migrate import alembic_config, upgrade

WHEN = dt.datetime(2026, 11, 20, 10)
NOON = int(dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC).timestamp())


def _at_0017_with_a_second_holder(url: str, send_id: int) -> None:
    """The database as 0017 left it, with C2 holding C1's address in the same send."""
    config = alembic_config(url)
    engine = create_engine(config.attributes["url"])
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0017")
        connection.execute(text(
            "INSERT INTO recipient (send_id, customer_id, address) "
            "VALUES (:send, 'C2', 'family@example.com')"), {"send": send_id})
    engine.dispose()


async def test_the_migration_drops_a_second_holder_of_an_address(database_url: str) -> None:
    store = await open_store(database_url)
    campaign, _ = await store.open_campaign("t", 8, 504)
    await store.store_audience_page(campaign.id, "email", 0, [
        AudienceEntry("C1", 1, WHEN, "family@example.com")], True)
    [send] = await store.sends("t", list(SendState))
    await store.db.dispose()
    _at_0017_with_a_second_holder(database_url, send.id)
    upgrade(database_url)
    store = await open_store(database_url)
    try:
        uploads = await store.recipients_to_upload(send.id, 0, 100)
        assert [(r.customer_id, r.address) for r in uploads] == [("C1", "family@example.com")]
        assert (await store.event_counts("t"))["dropped"] == (1, 0)  # C2, on the send's day
        await store.record_callbacks([InboxItem(send.id, Event.OPENED, NOON,
                                                ("family@example.com",))])
        await store.process_inbox()
        assert (await store.event_counts("t"))["opened"] == (1, 0)  # C1's alone
    finally:
        await store.db.dispose()


async def test_a_page_repeating_earlier_customers_and_addresses_adds_only_the_new(
        database_url: str) -> None:
    store = await open_store(database_url)
    campaign, _ = await store.open_campaign("t", 9, 504)
    try:
        assert await store.store_audience_page(campaign.id, "email", 0, [
            AudienceEntry("C1", 1, WHEN, "one@example.com"),
            AudienceEntry("C2", 1, WHEN, None)], False)
        assert await store.store_audience_page(campaign.id, "email", 2, [
            AudienceEntry("C1", 1, WHEN, None),  # stored with an address: kept, no Dropped
            AudienceEntry("C2", 1, WHEN, "two@example.com"),  # stored without: stays so
            AudienceEntry("C3", 1, WHEN, "one@example.com"),  # C1's address: Dropped
            AudienceEntry("C4", 1, WHEN, "four@example.com")], True)
        [send] = await store.sends("t", list(SendState))
        uploads = await store.recipients_to_upload(send.id, 0, 100)
        assert [(r.customer_id, r.address) for r in uploads] == [
            ("C1", "one@example.com"), ("C4", "four@example.com")]
        assert (await store.event_counts("t"))["dropped"] == (2, 0)  # C2 and C3
        assert send.recipients == 4
    finally:
        await store.db.dispose()
