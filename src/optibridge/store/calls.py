"""The calls made with each API key, counted in the database, so that every process that
uses a key (replicas of ``serve``, CLI commands beside it) shares one window."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, delete, func, insert, or_, select, text, update

from optibridge.domain import LeaseClaim
from optibridge.store.base import StoreBase
from optibridge.store.db import Turn
from optibridge.store.leases import LeaseStore, database_now, lease_left_query, seconds_left
from optibridge.store.schema import ApiCall


def _counted(key: str, now: float, span: float) -> tuple[ColumnElement[bool], ...]:
    """The key's calls still in its window: under way, or ended within ``span``."""
    return (ApiCall.key == key, or_(ApiCall.ended_at.is_(None), ApiCall.ended_at > now - span))


def _leaves(span: float, unended_for: float) -> ColumnElement[float]:
    """When a counted call leaves the window: ``span`` after it ended, or (no end
    recorded: its process died or froze) after it would have timed out."""
    return func.coalesce(ApiCall.ended_at, ApiCall.started_at + unended_for) + span


@dataclass(frozen=True)
class Reservation:
    call_id: int | None  # None: the key's window is full
    wait: float  # when full: seconds until the oldest counted call leaves the window
    lease_left: float  # seconds the claimed lease has left (inf when no lease was claimed)


class CallStore(LeaseStore, StoreBase):
    async def reserve_call(self, key: str, requests: int, span: float,
                           lease: LeaseClaim | None = None, *, min_lease_left: float = 0.0,
                           unended_for: float = 30.0) -> Reservation:
        """Count the key's calls in the last ``span`` seconds (and those under way) and,
        if fewer than ``requests``, record one more as started now.

        With ``lease``, nothing is recorded unless that lease is current by the database's
        clock with more than ``min_lease_left`` seconds left. A call whose end was never
        recorded (its process died or froze) counts as if it ended ``unended_for`` (its
        timeout) after it started.

        Urgent among SQLite's writers: a call waits for this tiny write, and must not
        queue behind report batch forming (10,000-row updates). Core statements
        in one hand-over to the driver (``write_driver``): through the ORM each of the
        five statements was a round trip through a busy event loop, the write connection
        held 8 ms."""
        sqlite = self.db.sqlite

        def reserve(connection: Connection) -> Reservation:
            if not sqlite:  # SQLite's write transactions are one at a time already
                connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                                   {"key": key})
            now = float(connection.scalar(select(database_now(sqlite))) or 0.0)
            left = float("inf")
            if lease is not None:
                left = seconds_left(connection.scalar(lease_left_query(
                    sqlite, lease.tenant, lease.holder, lease.epoch)))
                if left <= min_lease_left:
                    return Reservation(None, 0.0, left)
            connection.execute(delete(ApiCall).where(
                ApiCall.key == key, ApiCall.started_at < now - unended_for - span))
            counted = connection.execute(
                select(func.count(), func.min(_leaves(span, unended_for)))
                .where(*_counted(key, now, span))).one()
            if int(counted[0]) >= requests:
                # Unended calls of this process end soon; poll rather than wait them out.
                return Reservation(None, min(max(float(counted[1]) - now, 0.01), 1.0), left)
            call_id = connection.scalar(insert(ApiCall).values(key=key, started_at=now)
                                        .returning(ApiCall.id))
            return Reservation(call_id, 0.0, left)

        return await self.db.write_driver(reserve, turn=Turn.URGENT)

    async def end_call(self, call_id: int) -> None:
        """The call's answer came back (or it was never sent): it leaves the window
        ``span`` seconds from now."""
        await self.write_statement(update(ApiCall).where(ApiCall.id == call_id).values(
            ended_at=database_now(self.db.sqlite)), turn=Turn.URGENT)

    async def window_clears_in(self, key: str, span: float, unended_for: float = 30.0
                               ) -> float:
        """Seconds until the last call counted for the key has left its window (0 when
        none is counted): how long a new lease holder waits before its first call."""
        async with self.db.read() as session:
            now = await self.database_time(session)
            last = await session.scalar(select(func.max(_leaves(span, unended_for)))
                                        .where(*_counted(key, now, span)))
            return 0.0 if last is None else max(float(last) - now, 0.0)

    async def calls_in_window(self, key: str, span: float) -> int:
        async with self.db.read() as session:
            now = await self.database_time(session)
            return int(await session.scalar(select(func.count())
                                            .where(*_counted(key, now, span))) or 0)
