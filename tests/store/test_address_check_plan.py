"""PostgreSQL: a second campaign's address check is not planned as a read of the page's
addresses once per recipient of its sends, the plan that statistics taken before its sends
had rows gave (a pull stood still for minutes)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from optibridge.domain import AudienceEntry, SendState
from optibridge.store import open_store

WHEN = dt.datetime(2030, 1, 1)


def _page(prefix: str, start: int, count: int) -> list[AudienceEntry]:
    return [AudienceEntry(f"{prefix}{i}", 7 + i % 2, WHEN, f"{prefix}{i}@example.com")
            for i in range(start, start + count)]


@pytest.mark.postgres
async def test_a_second_campaigns_address_check_looks_each_address_up(
        postgres_url: str) -> None:
    store = await open_store(postgres_url)
    first, _ = await store.open_campaign("t", 1, 504)
    for page in range(3):  # pulled to the end: its statistics are taken
        await store.store_audience_page(first.id, "email", page * 3_000,
                                        _page("a", page * 3_000, 3_000), page == 2)
    second, _ = await store.open_campaign("t", 2, 504)
    await store.store_audience_page(second.id, "email", 0, _page("b", 0, 3_000), False)
    sends = {s.id for s in await store.sends_being_pulled("t", list(SendState))}
    check = store.addresses_held(sends, [f"b{i}@example.com" for i in range(3_000, 6_000)])
    sql = str(check.compile(dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
                            compile_kwargs={"literal_binds": True}))
    async with store.db.read() as session:
        plan = "\n".join(row[0] for row in await session.execute(text(f"EXPLAIN {sql}")))
    await store.db.dispose()
    # Not the page's addresses read through once per recipient of the sends: what the
    # planner chose when it believed the sends empty (a hash of them, or one lookup per
    # address, are both fine).
    assert "Nested Loop Semi Join" not in plan, plan
