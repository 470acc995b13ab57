"""The store on SQLite and PostgreSQL: migrations, exactly-once keys, batches, leases."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import insert

from optibridge.domain import (
    AudienceEntry,
    BatchState,
    CampaignStage,
    Event,
    InboxItem,
    NewTrigger,
    SendState,
    fields_json,
)
from optibridge.store import Store, open_store
from optibridge.store.migrate import is_current
from optibridge.store.schema import CallbackInbox

T0 = dt.datetime(2026, 11, 20, 10, 0, 0)


def entry(i: int, template: int = 1, when: dt.datetime = T0, address: str | None = "x"
          ) -> AudienceEntry:
    return AudienceEntry(customer_id=f"C{i}", template_id=template, scheduled_time=when,
                         address=None if address is None else f"c{i}@example.com",
                         fields=fields_json({"FirstName": f"N{i}"}))


async def pulled_campaign(store: Store, entries: list[AudienceEntry]) -> int:
    campaign, created = await store.open_campaign("t", 77, 504)
    assert created
    assert await store.store_audience_page(campaign.id, "email", 0, entries, last_page=True)
    return campaign.id


async def test_migrations_reach_head(database_url: str) -> None:
    store = await open_store(database_url)
    await store.db.dispose()
    assert is_current(database_url)


async def test_writes_take_turns_on_sqlite_alone(database_url: str) -> None:
    store = await open_store(database_url)
    assert store.writes_take_turns == database_url.startswith("sqlite")
    await store.db.dispose()


async def test_open_campaign_is_idempotent(database_url: str) -> None:
    store = await open_store(database_url)
    first, created = await store.open_campaign("t", 1, 504)
    again, created_again = await store.open_campaign("t", 1, 504)
    assert created and not created_again and first.id == again.id
    await store.db.dispose()


async def test_audience_pages_split_into_sends_and_resume(database_url: str) -> None:
    store = await open_store(database_url)
    campaign, _ = await store.open_campaign("t", 5, 504)
    later = T0 + dt.timedelta(hours=1)
    page1 = [entry(1), entry(2, template=2), entry(3, when=later)]
    page2 = [entry(4), entry(5, address=None)]
    assert await store.store_audience_page(campaign.id, "email", 0, page1, last_page=False)
    # The same page again (a crash after storing it): refused, nothing doubled.
    assert not await store.store_audience_page(campaign.id, "email", 0, page1, False)
    assert await store.store_audience_page(campaign.id, "email", 3, page2, last_page=True)
    state = await store.get_campaign("t", 5, 504)
    assert state is not None
    assert state.stage == CampaignStage.PULLED and state.pulled == 5 and state.next_skip == 5
    sends = await store.sends("t", list(SendState))
    assert sorted((s.template_id, s.scheduled_time, s.recipients) for s in sends) == [
        (1, T0, 3), (1, later, 1), (2, T0, 1)]
    counts = await store.event_counts("t")
    assert counts == {"dropped": (1, 0)}  # the customer without an address
    await store.db.dispose()


async def test_sends_being_pulled_are_those_of_pulling_campaigns(database_url: str) -> None:
    store = await open_store(database_url)
    campaign, _ = await store.open_campaign("t", 5, 504)
    assert await store.store_audience_page(campaign.id, "email", 0, [entry(1), entry(2, 2)],
                                           last_page=False)
    pulling = await store.sends_being_pulled("t", [SendState.NEW, SendState.LISTED])
    assert sorted(s.template_id for s in pulling) == [1, 2]
    assert await store.sends("t", list(SendState)) == []  # not executable to the end yet
    assert await store.campaign_stage(campaign.id) == CampaignStage.PULLING
    assert await store.sends_being_pulled("t", [SendState.LISTED]) == []
    assert await store.store_audience_page(campaign.id, "email", 2, [], last_page=True)
    assert await store.sends_being_pulled("t", [SendState.NEW, SendState.LISTED]) == []
    assert await store.campaign_stage(campaign.id) == CampaignStage.PULLED
    assert len(await store.sends("t", list(SendState))) == 2
    await store.db.dispose()


async def test_callbacks_map_to_customers_once(database_url: str) -> None:
    store = await open_store(database_url)
    await pulled_campaign(store, [entry(i) for i in range(10)])
    send = (await store.sends("t", list(SendState)))[0]
    noon = int(dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC).timestamp())
    item = InboxItem(send.id, Event.OPENED, noon, ("c1@example.com", "c2@example.com",
                                                   "stranger@example.com"))
    await store.record_callbacks([item, item])  # the platform repeated itself
    assert await store.process_inbox() == 2
    assert await store.process_inbox() == 0
    assert (await store.event_counts("t"))["opened"] == (2, 0)
    assert (await store.problem_counts())["unknown_address"] == 1  # one problem, counted
    assert any("stranger@example.com (heard 2 times)" in e.message
               for e in await store.recent_errors())
    await store.db.dispose()


async def test_report_batches_split_at_the_limit_and_track_state(database_url: str) -> None:
    store = await open_store(database_url)
    await pulled_campaign(store, [entry(i) for i in range(25)])
    send = (await store.sends("t", list(SendState)))[0]
    when = int(dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC).timestamp())
    addresses = tuple(f"c{i}@example.com" for i in range(25))
    await store.record_callbacks([InboxItem(send.id, Event.CLICKED, when, addresses)])
    await store.process_inbox()
    formed = await store.form_report_batches("t", ready_before=store.clock() + 1, max_size=10)
    assert formed == 3
    batches = await store.batches("t", [BatchState.PENDING])
    assert sorted(b.size for b in batches) == [5, 10, 10]
    members = [await store.batch_customers(b.id) for b in batches]
    assert sorted(c for m in members for c in m) == sorted(f"C{i}" for i in range(25))
    first = batches[0]
    assert await store.mark_batch(first.id, BatchState.SENDING, expect=BatchState.PENDING)
    assert not await store.mark_batch(first.id, BatchState.SENDING, expect=BatchState.PENDING)
    assert await store.doubt_interrupted_batches("t") == 1
    doubt = await store.batches("t", [BatchState.IN_DOUBT])
    assert [b.id for b in doubt] == [first.id]
    # Nothing is formed twice.
    assert await store.form_report_batches("t", store.clock() + 1, 10) == 0
    await store.db.dispose()


async def test_drop_unsent_reports_only_the_silent_recipients(database_url: str) -> None:
    store = await open_store(database_url)
    await pulled_campaign(store, [entry(i) for i in range(6)] + [entry(9, address=None)])
    send = (await store.sends("t", list(SendState)))[0]
    when = int(T0.replace(tzinfo=dt.UTC).timestamp())
    await store.record_callbacks([InboxItem(send.id, Event.SUBMITTED, when,
                                            ("c0@example.com", "c1@example.com"))])
    await store.process_inbox()
    assert await store.drop_unsent(send, [Event.SUBMITTED]) == 4
    assert await store.drop_unsent(send, [Event.SUBMITTED]) == 0
    assert (await store.event_counts("t"))["dropped"] == (5, 0)
    # A submitted event arriving after the decision is late: kept, counted, not stored as
    # an interaction (the customer stays Dropped, not both). Opens still count.
    await store.record_callbacks([
        InboxItem(send.id, Event.SUBMITTED, when, ("c2@example.com",)),
        InboxItem(send.id, Event.OPENED, when, ("c3@example.com",))])
    await store.process_inbox()
    counts = await store.event_counts("t")
    assert counts["submitted"] == (2, 0) and counts["opened"] == (1, 0)
    assert (await store.problem_counts())["late"] == 1
    await store.db.dispose()


async def test_lease_has_one_holder_until_it_expires_by_the_database_clock(
        database_url: str) -> None:
    store = await open_store(database_url)
    store.clock = lambda: 0.0  # the lease ignores the process's clock: the database's counts
    first = await store.acquire_lease("t", "a", ttl=1.0)
    assert (first.held, first.previous, first.epoch) == (True, None, 1)
    assert not (await store.acquire_lease("t", "b", ttl=1.0)).held
    assert (await store.acquire_lease("t", "a", ttl=1.0)).epoch == 1  # renewed, same epoch
    await asyncio.sleep(1.1)
    taken = await store.acquire_lease("t", "b", ttl=10)
    assert (taken.held, taken.previous, taken.epoch) == (True, "a", 2)
    assert not (await store.acquire_lease("t", "a", ttl=10)).held
    await store.release_lease("t", "b")
    again = await store.acquire_lease("t", "a", ttl=10)
    assert (again.held, again.epoch) == (True, 3)  # a release never resets the epoch
    await store.db.dispose()


@pytest.mark.parametrize("url", ["mysql://x/y", "oracle://z"])
def test_unsupported_database_urls_are_refused(url: str) -> None:
    from optibridge.store.db import DatabaseUrlError, normalize_url

    with pytest.raises(DatabaseUrlError, match="use sqlite"):
        normalize_url(url)


async def test_a_second_customer_with_the_same_address_in_a_send_is_dropped(
        database_url: str) -> None:
    store = await open_store(database_url)
    campaign, _ = await store.open_campaign("t", 8, 504)
    shared = AudienceEntry("C1", 1, T0, "family@example.com")
    page1 = [shared, AudienceEntry("C2", 1, T0, "family@example.com"), shared]
    page2 = [AudienceEntry("C3", 1, T0, "family@example.com"),
             AudienceEntry("C4", 2, T0, "family@example.com")]  # another send: fine
    assert await store.store_audience_page(campaign.id, "email", 0, page1, False)
    assert await store.store_audience_page(campaign.id, "email", 3, page2, True)
    assert (await store.event_counts("t"))["dropped"] == (2, 0)  # C2 and C3
    sends = {s.template_id: s for s in await store.sends("t", list(SendState))}
    uploads = await store.recipients_to_upload(sends[1].id, 0, 100)
    assert [(r.customer_id, r.address) for r in uploads] == [("C1", "family@example.com")]
    await store.db.dispose()


async def test_inbox_rows_from_before_the_json_format_still_map(database_url: str) -> None:
    store = await open_store(database_url)
    await pulled_campaign(store, [entry(i) for i in range(3)])
    send = (await store.sends("t", list(SendState)))[0]
    noon = int(dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC).timestamp())
    async with store.db.write() as session:  # as an older version stored it
        await session.execute(insert(CallbackInbox).values(
            send_id=send.id, event="opened", event_time=noon,
            addresses="c0@example.com\nc2@example.com", count=2, received_at=store.clock()))
    await store.record_callbacks([InboxItem(send.id, Event.OPENED, noon, ("C1@Example.com",))])
    assert await store.process_inbox() == 2  # one group, two stored formats
    assert (await store.event_counts("t"))["opened"] == (3, 0)
    await store.db.dispose()


async def test_a_second_customer_with_the_same_address_in_a_triggered_send_is_dropped(
        database_url: str) -> None:
    store = await open_store(database_url)
    campaign, _ = await store.open_campaign("t", 9, 504, triggered=True)
    await store.record_triggers([
        NewTrigger("t", 9, 504, 1, customer, "family@example.com", {}, "{}")
        for customer in ("C1", "C2")])
    [group] = await store.pending_trigger_groups("t")
    gathered = await store.gather_triggers("t", campaign.id, group, "email", T0, 100)
    assert gathered is not None
    assert (gathered.recipients, gathered.without_address) == (2, 1)
    assert (await store.event_counts("t"))["dropped"] == (1, 0)  # C2
    uploads = await store.recipients_to_upload(gathered.send_id, 0, 100)
    assert [(r.customer_id, r.address) for r in uploads] == [("C1", "family@example.com")]
    noon = int(dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC).timestamp())
    await store.record_callbacks([InboxItem(gathered.send_id, Event.OPENED, noon,
                                            ("family@example.com",))])
    await store.process_inbox()
    assert (await store.event_counts("t"))["opened"] == (1, 0)  # C1's alone
    await store.db.dispose()
