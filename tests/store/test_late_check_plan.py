"""Mapping's late check (a sent event for a customer already reported Dropped) reads only
what it needs, on both databases.

- PostgreSQL reads the send's Dropped from their own index. It went through each heard
  customer's interactions of every send (ix_interaction_customer, a table row read for
  each): most of the time after the last send READY of the 1,000,000-customer campaign.
  (SQLite looks each customer up in the interaction's unique index, as good a probe there.)
- Neither reads every recipient of the send. Asked for the late customers in customer
  order, SQLite walked the send's recipients in uq_recipient_identity to give the order:
  65 ms for each sent event's mapping of a send of 200,000, on the one write connection the
  callbacks' answers wait for. (PostgreSQL starts from the send's Dropped, none here, and
  reads recipients by customer.)
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest

from optibridge.domain import AudienceEntry, Event, InboxItem, SendState
from optibridge.store import Store, open_store
from tests.store.plans import plan_of, statements_run

T0 = dt.datetime(2026, 11, 20, 10, 0, 0)


async def _mapping_statements(store: Store, customers: int, heard: Event,
                              wanted: Callable[[str], bool]) -> list[tuple[str, Any]]:
    """The statements (``wanted`` ones, with their parameters) that mapping a callback of
    two customers of a send of ``customers`` ran."""
    campaign, _ = await store.open_campaign("t", 1, 504)
    entries = [AudienceEntry(f"C{i:05d}", 1, T0, f"c{i}@example.com")
               for i in range(customers)]
    await store.store_audience_page(campaign.id, "email", 0, entries, last_page=True)
    send = (await store.sends("t", list(SendState)))[0]
    await store.record_callbacks([InboxItem(send.id, heard, 1_790_000_000,
                                            ("c1@example.com", "c2@example.com"))])
    with statements_run(store.db.write_engines, wanted) as seen:
        assert await store.process_inbox()
    return seen


@pytest.mark.postgres
async def test_the_late_check_reads_the_sends_dropped_from_their_index(
        postgres_url: str) -> None:
    store = await open_store(postgres_url)
    try:
        seen = await _mapping_statements(
            store, 3_000, Event.SUBMITTED,
            lambda statement: "EXISTS" in statement and "interaction.event" in statement)
        assert seen, "mapping a submitted event ran no late check"
        for statement, parameters in seen:
            plan = " | ".join(await plan_of(store, (statement, parameters)))
            assert "ix_interaction_dropped" in plan, plan
    finally:
        await store.db.dispose()


def _recipient_reads(sqlite: bool, plan: list[str]) -> list[str]:
    """How a plan reads the recipient table: one line for each read, with its index
    condition."""
    if sqlite:  # SEARCH recipient USING INDEX name (send_id=? AND address=?)
        return [line for line in plan if line.startswith(("SEARCH recipient",
                                                          "SCAN recipient"))]
    return [f"{line} {after}" for line, after in zip(plan, [*plan[1:], ""], strict=True)
            if re.search(r" on recipient\b", line)]  # the next line is its Index Cond


async def test_the_late_check_looks_the_heard_addresses_up(database_url: str) -> None:
    store = await open_store(database_url)
    try:
        seen = await _mapping_statements(
            store, 20_000, Event.DELIVERED,
            lambda statement: statement.lstrip().startswith("SELECT recipient.customer_id"))
        assert seen, "mapping a delivered event ran no late check"
        for statement, parameters in seen:
            reads = _recipient_reads(store.db.sqlite, await plan_of(store, (statement, parameters)))
            assert reads, statement
            for read in reads:  # by send and address, or by send and customer
                assert "send_id" in read and " AND " in read, read
    finally:
        await store.db.dispose()
