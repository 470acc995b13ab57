"""The callback inbox: stored as received, then mapped to customers and interactions."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

import orjson
from sqlalchemy import Date, Float, exists, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from optibridge.domain import Event, InboxItem
from optibridge.store.base import StoreBase, rowcount
from optibridge.store.schema import CallbackInbox, CallbackProblem, Interaction, Recipient, Send

# Events that prove a message was sent. One that arrives for a customer already reported
# Dropped (the callbacks were quiet long enough for us to decide) is late: reporting it too
# would count the customer as both, so it is kept as a problem instead.
SENT_PROOF = frozenset({Event.SUBMITTED, Event.DELIVERED, Event.BOUNCED})


# Addresses mapped in one write transaction: on SQLite the callback endpoint's own commits
# wait for the one write connection, so mapping goes in short transactions.
MAPPING_BUDGET = 5_000


class _Pending(NamedTuple):
    """A stored callback not yet mapped."""

    id: int
    send_id: int
    event: str
    event_time: int
    addresses: str
    size: int  # addresses


_PENDING_COLUMNS = (CallbackInbox.id, CallbackInbox.send_id, CallbackInbox.event,
                    CallbackInbox.event_time, CallbackInbox.addresses, CallbackInbox.count)


def _json_array(stored: str) -> str:
    """An inbox row's addresses as a JSON array (rows stored before 0004 joined them with
    newlines)."""
    return stored if stored.startswith("[") else orjson.dumps(stored.split("\n")).decode()


def _joined(arrays: list[str]) -> str:
    """Several JSON arrays as one, by text: no array is parsed."""
    if len(arrays) == 1:
        return arrays[0]
    return "[" + ",".join(a[1:-1] for a in arrays if a != "[]") + "]"


class _Overtaken(Exception):
    """Callbacks being mapped were mapped by someone else first."""


def _within_budget(items: list[_Pending]) -> list[_Pending]:
    """The first callbacks whose addresses fit the budget (always at least one)."""
    total = 0
    for index, item in enumerate(items):
        total += item.size
        if total > MAPPING_BUDGET and index > 0:
            return items[:index]
    return items


class CallbackStore(StoreBase):
    async def record_callbacks(self, items: Sequence[InboxItem]) -> None:
        """Store verified callbacks in one transaction (the HTTP answer waits for it);
        addresses are kept lowercased, as the recipients' are."""
        now = self.clock()
        rows = [{"send_id": i.send_id, "event": str(i.event), "event_time": i.event_time,
                 "addresses": orjson.dumps(i.addresses).decode().lower(),
                 "count": len(i.addresses),
                 "received_at": now} for i in items]
        async with self.db.write(urgent=True) as session:
            await self.insert_many_ignoring(session, CallbackInbox, rows, plain=True)

    async def record_callback_problem(self, kind: str, send_id: int | None, detail: str) -> None:
        async with self.db.write(urgent=True) as session:
            session.add(CallbackProblem(kind=kind, send_id=send_id, detail=detail[:2000],
                                        received_at=self.clock()))

    async def inbox_backlog(self) -> int:
        async with self.db.read() as session:
            count = await session.scalar(select(func.count()).select_from(CallbackInbox)
                                         .where(CallbackInbox.processed_at.is_(None)))
            return int(count or 0)

    async def process_inbox(self, send_ids: Sequence[int] | None = None, limit: int = 1_000
                            ) -> int:
        """Turn stored callbacks into interactions; returns how many callbacks it handled.

        Each address maps back to its customer through the send's recipients; each
        (send, customer, event, day) is stored once however often it is heard. Unknown
        addresses are kept as problems, never dropped silently.
        """
        # Read and group outside the write transaction: the write connection is shared
        # with the callback endpoint's own commits, so it is held only for the SQL.
        async with self.db.read() as session:
            query = (select(*_PENDING_COLUMNS).where(CallbackInbox.processed_at.is_(None))
                     .order_by(CallbackInbox.id).limit(limit))
            if send_ids is not None:
                query = query.where(CallbackInbox.send_id.in_(list(send_ids)))
            items = _within_budget([_Pending(*row) for row in await session.execute(query)])
            if not items:
                return 0
            known = set(await session.scalars(select(Send.id).where(
                Send.id.in_({i.send_id for i in items}))))
        # Per (send, event, day), the JSON arrays of addresses as stored: the database
        # reads them (and dedupes), so a callback of 200,000 addresses never becomes
        # 200,000 Python strings here.
        heard: dict[tuple[int, Event, dt.date], list[str]] = defaultdict(list)
        for item in items:
            if item.send_id in known and item.size:
                day = dt.datetime.fromtimestamp(item.event_time, dt.UTC).date()
                heard[(item.send_id, Event(item.event), day)].append(
                    _json_array(item.addresses))
        try:
            await self._map_all(items, known, heard)
        except _Overtaken:
            return 0  # another mapper took some of them meanwhile; read again next pass
        return len(items)

    async def _map_all(self, items: list[_Pending], known: set[int],
                       heard: dict[tuple[int, Event, dt.date], list[str]]) -> None:
        """One write transaction: the callbacks marked mapped, their interactions stored."""
        async with self.db.write() as session:
            now = self.clock()
            marked = await session.execute(
                update(CallbackInbox).where(CallbackInbox.id.in_([i.id for i in items]),
                                            CallbackInbox.processed_at.is_(None))
                .values(processed_at=now))
            if rowcount(marked) != len(items):
                raise _Overtaken
            session.add_all(CallbackProblem(kind="unknown_send", send_id=i.send_id,
                                            detail=f"{i.event} x{i.size}", received_at=now)
                            for i in items if i.send_id not in known)
            for (send_id, event, day), arrays in heard.items():
                await self._map(session, send_id, event, day, _joined(arrays), now)

    async def _map(self, session: AsyncSession, send_id: int, event: Event, day: dt.date,
                   addresses: str, now: float) -> None:
        """Store what one send's addresses (a JSON array) heard on one day, as set-based
        SQL: addresses are joined to customers in the database, not one by one in Python."""
        listed = self.json_values_table(addresses)
        unknown = await session.execute(
            select(listed.c.value, func.count()).where(~exists().where(
                Recipient.send_id == send_id, Recipient.address == listed.c.value))
            .group_by(listed.c.value))
        session.add_all(CallbackProblem(
            kind="unknown_address", send_id=send_id, received_at=now,
            detail=f"{event}: {address}" + (f" (heard {times} times)" if times > 1 else ""))
            for address, times in unknown)
        customers = select(Recipient.customer_id).where(
            Recipient.send_id == send_id,
            Recipient.address.in_(select(listed.c.value)))
        if event in SENT_PROOF:
            dropped = exists().where(Interaction.send_id == send_id,
                                     Interaction.customer_id == Recipient.customer_id,
                                     Interaction.event == Event.DROPPED)
            late = await session.scalars(customers.where(dropped))
            session.add_all(CallbackProblem(
                kind="late", send_id=send_id, received_at=now,
                detail=f"{event} for customer {customer_id}, already reported Dropped")
                for customer_id in sorted(late))
            customers = customers.where(~dropped)
        rows = customers.add_columns(
            literal(send_id).label("send_id"), literal(str(event)).label("event"),
            literal(day, Date).label("day"), literal(now, Float).label("created_at"))
        await session.execute(self.insert_ignoring_duplicates(Interaction).from_select(
            ["customer_id", "send_id", "event", "day", "created_at"], rows))

    async def last_callback_at(self, send_id: int) -> float | None:
        """When the newest callback of a send arrived (None before the first)."""
        async with self.db.read() as session:
            found = await session.scalar(select(func.max(CallbackInbox.received_at))
                                         .where(CallbackInbox.send_id == send_id))
            return None if found is None else float(found)

    async def problem_counts(self) -> dict[str, int]:
        async with self.db.read() as session:
            rows = await session.execute(select(CallbackProblem.kind, func.count())
                                         .group_by(CallbackProblem.kind))
            return {kind: int(n) for kind, n in rows}
