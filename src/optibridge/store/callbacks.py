"""The callback inbox: stored as received, then mapped to customers and interactions."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

import orjson
from sqlalchemy import (
    Connection,
    Date,
    Float,
    Select,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from optibridge.domain import Event, InboxItem, SendRecord
from optibridge.store.campaigns import drop_unsent_in
from optibridge.store.db import Turn
from optibridge.store.problems import CallbackProblemRow, ProblemStore
from optibridge.store.schema import (
    CallbackInbox,
    CallbackProblem,
    Campaign,
    Interaction,
    Recipient,
    Send,
    is_dropped,
)

# Events that prove a message was sent. One that arrives for a customer already reported
# Dropped (the callbacks were quiet long enough for us to decide) is late: reporting it too
# would count the customer as both, so it is kept as a problem instead.
SENT_PROOF = frozenset({Event.SUBMITTED, Event.DELIVERED, Event.BOUNCED})


# A stored callback that cannot be mapped is tried again after a growing pause, and after
# this many tries set aside as a problem: one bad row never stops the others.
MAX_MAPPING_ATTEMPTS = 5
RETRY_PAUSE = 5.0  # seconds, doubled each try
# Unknown addresses kept one problem each, per mapping; beyond that one summary row.
UNKNOWN_LISTED = 100
# How far back the observed callback lag is looked for (see ``callback_lag``).
LAG_LOOKBACK = 3600.0

# Addresses mapped in one write transaction: on SQLite the callback endpoint's own commits
# wait for the one write connection, so mapping goes in short transactions; PostgreSQL's
# intake writes beside the mapping, which maps more at once (fewer statements an address).
MAPPING_BUDGET = 5_000
POSTGRES_MAPPING_BUDGET = 20_000


# PostgreSQL: fold the rows the inbox's statement trigger appended to ``callback_total``
# into its row 0 (SKIP LOCKED: two folders never count a row twice; one statement, so a
# reader sees the fold entirely or not at all).
FOLD_TOTAL = text("""
WITH moved AS (
    DELETE FROM callback_total WHERE id IN (
        SELECT id FROM callback_total WHERE id > 0 ORDER BY id LIMIT :limit
        FOR UPDATE SKIP LOCKED)
    RETURNING callbacks, events)
UPDATE callback_total SET callbacks = callback_total.callbacks + moved.callbacks,
                          events = callback_total.events + moved.events
FROM (SELECT coalesce(sum(callbacks), 0) AS callbacks, coalesce(sum(events), 0) AS events
      FROM moved) AS moved
WHERE callback_total.id = 0 AND moved.callbacks > 0
""")


# The callback endpoint's write, as the driver takes it: no ORM work on the hot path.
INBOX_INSERT = ("INSERT INTO callback_inbox (send_id, event, event_time, addresses, count, "
                "received_at) VALUES (?, ?, ?, ?, ?, ?)")
INBOX_UNNEST = ("INSERT INTO callback_inbox (send_id, event, event_time, addresses, count, "
                "received_at) SELECT * FROM unnest(%s::bigint[], %s::varchar[], "
                "%s::bigint[], %s::text[], %s::int[], %s::float8[])")


class _Pending(NamedTuple):
    """A stored callback not yet mapped."""

    id: int
    send_id: int
    event: str
    event_time: int
    addresses: str
    size: int  # addresses


# Without the addresses: those are read only for the callbacks that fit the budget (a
# backlog of 1,000 callbacks of 100 addresses is 2.5 MB, a pass maps 50 of them).
_PENDING_COLUMNS = (CallbackInbox.id, CallbackInbox.send_id, CallbackInbox.event,
                    CallbackInbox.event_time, CallbackInbox.count)


def _json_array(stored: str) -> str:
    """An inbox row's addresses as a JSON array (rows stored before 0004 joined them with
    newlines)."""
    return stored if stored.startswith("[") else orjson.dumps(stored.split("\n")).decode()


def _joined(arrays: list[str]) -> str:
    """Several JSON arrays as one, by text: no array is parsed."""
    if len(arrays) == 1:
        return arrays[0]
    return "[" + ",".join(a[1:-1] for a in arrays if a != "[]") + "]"


def _transient(error: Exception) -> bool:
    """Whether a database error is about the database (down, full, locked), not the row."""
    return isinstance(error, (OperationalError, InterfaceError)) or (
        isinstance(error, DBAPIError) and error.connection_invalidated)


def _day(item: _Pending) -> tuple[Event, dt.date]:
    """The row's event and UTC day; ValueError/OverflowError if the row cannot have them."""
    return Event(item.event), dt.datetime.fromtimestamp(item.event_time, dt.UTC).date()


def _heard(items: list[_Pending], known: set[int]
           ) -> dict[tuple[int, Event, dt.date], list[str]]:
    """Per (send, event, day), the callbacks' JSON arrays of addresses as stored: the
    database reads them (and dedupes), so a callback of 200,000 addresses never becomes
    200,000 Python strings here."""
    heard: dict[tuple[int, Event, dt.date], list[str]] = defaultdict(list)
    for item in items:
        if item.send_id in known and item.size:
            event, day = _day(item)
            heard[(item.send_id, event, day)].append(_json_array(item.addresses))
    return heard


def _within_budget(sizes: Sequence[int], budget: int) -> int:
    """How many of the first callbacks (of these sizes, in addresses) fit the budget
    (always at least one, if there is one)."""
    total = 0
    for index, size in enumerate(sizes):
        total += size
        if total > budget and index > 0:
            return index
    return len(sizes)


class CallbackStore(ProblemStore):
    async def record_callbacks(self, items: Sequence[InboxItem]) -> None:
        """Store verified callbacks in one transaction (the HTTP answer waits for it);
        addresses are kept lowercased, as the recipients' are."""
        if not items:
            return
        now = self.clock()
        rows = [(i.send_id, str(i.event), i.event_time,
                 orjson.dumps(i.addresses).decode().lower(), len(i.addresses), now)
                for i in items]
        if self.db.sqlite:  # the driver's executemany of one prepared statement
            def insert(connection: Connection) -> None:
                connection.exec_driver_sql(INBOX_INSERT, rows)
        else:  # one statement, each column one array
            columns = tuple(list(column) for column in zip(*rows, strict=True))

            def insert(connection: Connection) -> None:
                connection.exec_driver_sql(INBOX_UNNEST, columns)
        await self.db.write_driver(insert, turn=Turn.URGENT)

    async def inbox_backlog(self) -> int:
        async with self.db.read() as session:
            count = await session.scalar(select(func.count()).select_from(CallbackInbox)
                                         .where(CallbackInbox.processed_at.is_(None)))
            return int(count or 0)

    async def process_inbox(self, send_ids: Sequence[int] | None = None, limit: int = 1_000,
                            *, tenant: str | None = None) -> int:
        """Turn stored callbacks into interactions; returns how many callbacks it handled
        (see ``map_pass``)."""
        handled, _ = await self.map_pass(send_ids, limit, tenant=tenant)
        return handled

    async def map_pass(self, send_ids: Sequence[int] | None = None, limit: int = 1_000,
                       *, tenant: str | None = None) -> tuple[int, bool]:
        """Turn stored callbacks into interactions: (how many callbacks it handled, whether
        it stopped at its limit or budget, so that more may be waiting).

        Each address maps back to its customer through the send's recipients; each
        (send, customer, event, day) is stored once however often it is heard. Unknown
        addresses are kept as problems, never dropped silently. ``tenant``: only that
        tenant's callbacks (and those of no known send). A row that cannot be mapped is
        retried later and, after ``MAX_MAPPING_ATTEMPTS``, set aside as a problem; the
        others are mapped meanwhile.
        """
        now = self.clock()
        # Read and group outside the write transaction: the write connection is shared
        # with the callback endpoint's own commits, so it is held only for the SQL.
        async with self.db.read() as session:
            query = (select(*_PENDING_COLUMNS).where(
                CallbackInbox.processed_at.is_(None),
                or_(CallbackInbox.retry_at.is_(None), CallbackInbox.retry_at <= now))
                .order_by(CallbackInbox.id).limit(limit))
            if send_ids is not None:
                query = query.where(CallbackInbox.send_id.in_(list(send_ids)))
            if tenant is not None:
                query = query.where(~exists().where(
                    Send.id == CallbackInbox.send_id, Campaign.id == Send.campaign_pk,
                    Campaign.tenant != tenant))
            found = (await session.execute(query)).all()
            budget = MAPPING_BUDGET if self.db.sqlite else POSTGRES_MAPPING_BUDGET
            taken = found[:_within_budget([row[4] for row in found], budget)]  # row[4]: count
            if not taken:
                return 0, False
            full = len(found) >= limit or len(taken) < len(found)
            addresses = {row.id: row.addresses for row in await session.execute(
                select(CallbackInbox.id, CallbackInbox.addresses)
                .where(CallbackInbox.id.in_([row.id for row in taken])))}
            items = [_Pending(id, send_id, event, when, addresses[id], size)
                     for id, send_id, event, when, size in taken]
            known = set(await session.scalars(select(Send.id).where(
                Send.id.in_({i.send_id for i in items}))))
        unusable: list[tuple[_Pending, str]] = []
        usable: list[_Pending] = []
        for item in items:
            try:
                _day(item)
                usable.append(item)
            except (ValueError, OverflowError, OSError) as error:  # the row itself is bad
                unusable.append((item, f"{type(error).__name__}: {error}"))
        try:
            # What another mapper took meanwhile is left to it: a pass that claimed
            # nothing says 0, so that a caller mapping until none is left stops.
            return await self._map_all(usable, known, unusable), full
        except Exception as error:
            if _transient(error):
                raise
            # Something in these rows breaks the SQL: map them one at a time, so that
            # only the row at fault waits.
            for item in usable:
                await self._map_alone(item, known)
            await self._map_all([], known, unusable)
        return len(items), full

    async def _map_alone(self, item: _Pending, known: set[int]) -> None:
        try:
            await self._map_all([item], known, [])
        except Exception as error:
            if _transient(error):
                raise
            await self._retry_later(item, f"{type(error).__name__}: {error}")

    async def _retry_later(self, item: _Pending, reason: str) -> None:
        """Record a failed mapping on its row; the last allowed try sets it aside."""
        now = self.clock()

        def record(connection: Connection) -> None:
            attempts = int(connection.scalar(
                select(CallbackInbox.attempts).where(CallbackInbox.id == item.id)) or 0) + 1
            if attempts >= MAX_MAPPING_ATTEMPTS:
                self._set_aside(connection, [(item, reason)], now)
                return
            connection.execute(update(CallbackInbox).where(CallbackInbox.id == item.id)
                               .values(attempts=attempts, last_error=reason[:2000],
                                       retry_at=now + RETRY_PAUSE * 2 ** attempts))
        await self.db.write_driver(record)

    def _set_aside(self, connection: Connection, items: list[tuple[_Pending, str]],
                   now: float) -> None:
        """Rows that will never map: done with, each kept as an ``unmappable`` problem."""
        for item, reason in items:
            connection.execute(update(CallbackInbox).where(CallbackInbox.id == item.id)
                               .values(processed_at=now, last_error=reason[:2000]))
        self.add_callback_problems(connection, [CallbackProblemRow(
            "unmappable", item.send_id,
            f"callback {item.id} ({item.event} x{item.size}, when={item.event_time}): {reason}",
            key=f"inbox {item.id}") for item, reason in items])

    async def _map_all(self, items: list[_Pending], known: set[int],
                       unusable: list[tuple[_Pending, str]]) -> int:
        """One write transaction: the callbacks this mapper claims marked mapped, their
        interactions stored (the unusable set aside); how many it claimed. On the driver
        (``write_driver``): through a session each of its statements was a round trip
        through the event loop, the write connection held meanwhile."""
        def map_claimed(connection: Connection) -> int:
            now = self.clock()
            ids = [i.id for i in items] + [i.id for i, _ in unusable]
            claimed = set(connection.scalars(
                update(CallbackInbox).where(CallbackInbox.id.in_(self._unclaimed(ids)))
                .values(processed_at=now).returning(CallbackInbox.id))) if ids else set()
            self._set_aside(connection, [(i, why) for i, why in unusable if i.id in claimed],
                            now)
            mapped = [i for i in items if i.id in claimed]
            self.add_callback_problems(connection, [CallbackProblemRow(
                "unknown_send", i.send_id, f"{i.event} x{i.size}", key=f"{i.event}",
                times=i.size) for i in mapped if i.send_id not in known])
            for (send_id, event, day), arrays in _heard(mapped, known).items():
                self._map(connection, send_id, event, day, _joined(arrays), now)
            return len(claimed)
        return await self.db.write_driver(map_claimed)

    def _unclaimed(self, ids: list[int]) -> Select[int]:
        """Which of these callbacks no other mapper has mapped or is mapping. PostgreSQL
        skips the rows another mapper's transaction holds: waiting for it to commit (a
        send's follow step beside the mapping step) only to find them mapped held the
        waiting one's whole pass. Each maps what it claimed."""
        unclaimed = select(CallbackInbox.id).where(CallbackInbox.id.in_(ids),
                                                   CallbackInbox.processed_at.is_(None))
        return unclaimed if self.db.sqlite else unclaimed.with_for_update(skip_locked=True)

    def _map(self, connection: Connection, send_id: int, event: Event, day: dt.date,
             addresses: str, now: float) -> None:
        """Store what one send's addresses (a JSON array) heard on one day, as set-based
        SQL: addresses are joined to customers in the database, not one by one in Python."""
        listed = self.json_values_table(addresses)
        unknown = (connection.execute(
            select(listed.c.value, func.count()).where(~exists().where(
                Recipient.send_id == send_id, Recipient.address == listed.c.value))
            .group_by(listed.c.value).order_by(listed.c.value)
            .limit(UNKNOWN_LISTED + 1))).all()
        problems = [CallbackProblemRow("unknown_address", send_id, f"{event}: {address}",
                                       times=int(times))
                    for address, times in unknown[:UNKNOWN_LISTED]]
        if len(unknown) > UNKNOWN_LISTED:
            problems.append(CallbackProblemRow(
                "unknown_address", send_id,
                f"{event}: more than {UNKNOWN_LISTED} unknown addresses in one callback",
                key=f"{event}: more"))
        customers = select(Recipient.customer_id).where(
            Recipient.send_id == send_id,
            Recipient.address.in_(select(listed.c.value)))
        if event in SENT_PROOF:
            # ``is_dropped``: from the send's Dropped alone (ix_interaction_dropped), not
            # from each customer's interactions of every send, read row by row.
            dropped = exists().where(Interaction.send_id == send_id,
                                     Interaction.customer_id == Recipient.customer_id,
                                     is_dropped)
            # No ORDER BY: to give rows in customer order, SQLite walked the send's every
            # recipient in uq_recipient_identity (65 ms for a send of 200,000) instead of
            # looking the heard addresses up. The few found are sorted here; when there
            # are more than are listed, which ones are listed is the database's choice.
            late = sorted(connection.scalars(customers.where(dropped)
                                             .limit(UNKNOWN_LISTED + 1)))
            problems += [CallbackProblemRow(
                "late", send_id, f"{event} for customer {customer_id}, already reported "
                "Dropped") for customer_id in late[:UNKNOWN_LISTED]]
            if len(late) > UNKNOWN_LISTED:
                problems.append(CallbackProblemRow(
                    "late", send_id, f"{event}: more than {UNKNOWN_LISTED} customers already "
                    "reported Dropped in one callback", key=f"{event}: more"))
            customers = customers.where(~dropped)
        self.add_callback_problems(connection, problems)
        rows = customers.add_columns(
            literal(send_id).label("send_id"), literal(str(event)).label("event"),
            literal(day, Date).label("day"), literal(now, Float).label("created_at"))
        connection.execute(self.insert_ignoring_duplicates(Interaction).from_select(
            ["customer_id", "send_id", "event", "day", "created_at"], rows))

    async def fold_callback_total(self, limit: int = 50_000) -> None:
        """PostgreSQL: fold what the intake appended to ``callback_total`` into its total
        (SQLite's trigger adds to it directly)."""
        if self.db.sqlite:
            return
        async with self.db.write() as session:
            await session.execute(FOLD_TOTAL, {"limit": limit})

    async def drop_unsent_when_mapped(self, send: SendRecord, sent_events: Sequence[Event]
                                      ) -> int | None:
        """Drop the send's unsent recipients in the same transaction that confirms no
        callback of the send waits to be mapped (one might prove sending); None, and
        nothing dropped, while one waits."""
        async with self.db.write() as session:
            waiting = await session.scalar(select(exists().where(
                CallbackInbox.send_id == send.id, CallbackInbox.processed_at.is_(None))))
            if waiting:
                return None
            return await drop_unsent_in(self, session, send, sent_events)

    async def last_callback_at(self, send_id: int) -> float | None:
        """When the newest callback of a send arrived (None before the first)."""
        async with self.db.read() as session:
            found = await session.scalar(select(func.max(CallbackInbox.received_at))
                                         .where(CallbackInbox.send_id == send_id))
            return None if found is None else float(found)

    async def callback_lag(self, tenant: str, send_id: int) -> float:
        """The longest lag observed (arrival minus the callback's ``when``), in seconds, on
        the send's callbacks and on the tenant's callbacks of the last hour: how far the
        platform runs behind. 0 when nothing was heard."""
        lag = func.max(CallbackInbox.received_at - CallbackInbox.event_time)
        since = self.clock() - LAG_LOOKBACK
        async with self.db.read() as session:
            own = await session.scalar(select(lag).where(CallbackInbox.send_id == send_id))
            recent = await session.scalar(select(lag).where(
                CallbackInbox.received_at >= since,
                exists().where(Send.id == CallbackInbox.send_id,
                               Campaign.id == Send.campaign_pk, Campaign.tenant == tenant)))
        return max(0.0, float(own or 0.0), float(recent or 0.0))

    async def problem_counts(self) -> dict[str, int]:
        """Distinct callback problems per kind (a repeated one counts once)."""
        async with self.db.read() as session:
            rows = await session.execute(select(CallbackProblem.kind, func.count())
                                         .group_by(CallbackProblem.kind))
            return {kind: int(n) for kind, n in rows}
