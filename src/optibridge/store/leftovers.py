"""Creates on the platform, one row each, recorded before they are made.

The platform has no idempotency key and cannot list its lists and campaigns, so a create
whose answer is lost may have made an object nobody knows of. Its row keeps the unique name
it was made with and when it was asked and answered, which bounds where its ID can be
(``create_bounds``): the sweep (``pipeline/leftovers.py``) looks there and deletes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from optibridge.domain import CreateRecord, CreateState, Made, SendState
from optibridge.store.base import StoreBase, rowcount
from optibridge.store.db import Turn
from optibridge.store.schema import PlatformCreate, Send

OPEN = (CreateState.ASKING, CreateState.LOST, CreateState.ORPHAN)


def _record(row: PlatformCreate) -> CreateRecord:
    return CreateRecord(row.id, row.tenant, row.send_id, Made(row.made), row.name,
                        CreateState(row.state), row.platform_id, row.asked_at,
                        row.answered_at, row.note)


class LeftoverStore(StoreBase):
    async def create_asked(self, tenant: str, send_id: int, made: Made, name: str
                           ) -> CreateRecord:
        """Record a create about to be made; its name is ``name`` and the row's ID, so that
        no two creates share one."""
        asked_at = self.clock()

        def record(connection: Connection) -> CreateRecord:
            create_id = connection.scalar(insert(PlatformCreate).values(
                tenant=tenant, send_id=send_id, made=made, name=name,
                state=CreateState.ASKING, asked_at=asked_at).returning(PlatformCreate.id))
            assert create_id is not None
            named = f"{name} #{create_id}"[:255]
            connection.execute(update(PlatformCreate).where(PlatformCreate.id == create_id)
                               .values(name=named))
            return CreateRecord(create_id, tenant, send_id, made, named, CreateState.ASKING,
                                None, asked_at, None, None)
        return await self.db.write_driver(record, turn=Turn.CAMPAIGN)

    async def create_answered(self, create_id: int, platform_id: int, send_id: int,
                              expect: SendState, **send_values: Any) -> bool:
        """The create's answer came: record the send's step and the create in one
        transaction. False if the send moved meanwhile: what was made is then an orphan."""
        answered_at = self.clock()

        def record(connection: Connection) -> bool:
            advanced = rowcount(connection.execute(update(Send).where(
                Send.id == send_id, Send.state == expect).values(**send_values)))
            connection.execute(update(PlatformCreate).where(
                PlatformCreate.id == create_id).values(
                state=CreateState.MADE if advanced else CreateState.ORPHAN,
                platform_id=platform_id, answered_at=answered_at))
            return bool(advanced)
        return await self.db.write_driver(record, turn=Turn.CAMPAIGN)

    async def create_lost(self, create_id: int, note: str) -> None:
        async with self.db.write() as session:
            await session.execute(update(PlatformCreate).where(
                PlatformCreate.id == create_id).values(
                state=CreateState.LOST, answered_at=self.clock(), note=note[:2000]))

    async def create_refused(self, create_id: int) -> None:
        """The create surely made nothing (refused, or never sent): forget it."""
        async with self.db.write() as session:
            await session.execute(delete(PlatformCreate).where(PlatformCreate.id == create_id))

    async def settle_create(self, create_id: int, expect: CreateState, state: CreateState,
                            *, platform_id: int | None = None, note: str | None = None
                            ) -> bool:
        values: dict[str, Any] = {"state": state}
        if platform_id is not None:
            values["platform_id"] = platform_id
        if note is not None:
            values["note"] = note[:2000]
        if expect == CreateState.ASKING:
            values["answered_at"] = self.clock()
        async with self.db.write() as session:
            return bool(rowcount(await session.execute(update(PlatformCreate).where(
                PlatformCreate.id == create_id, PlatformCreate.state == expect)
                .values(**values))))

    async def creates(self, tenant: str | None = None,
                      states: Sequence[CreateState] = OPEN) -> list[CreateRecord]:
        query = (select(PlatformCreate).where(PlatformCreate.state.in_([str(s) for s in states]))
                 .order_by(PlatformCreate.id))
        if tenant is not None:
            query = query.where(PlatformCreate.tenant == tenant)
        async with self.db.read() as session:
            return [_record(r) for r in await session.scalars(query)]

    async def create_bounds(self, lost: CreateRecord) -> tuple[int, int | None]:
        """Where the lost create's object must be if the platform counts its IDs up: above
        every ID of its kind answered before it was asked (0 if none), and below the first
        one asked after its answer was lost (None while there is none)."""
        assert lost.answered_at is not None
        kind = (PlatformCreate.tenant == lost.tenant, PlatformCreate.made == lost.made,
                PlatformCreate.platform_id.is_not(None))
        async with self.db.read() as session:
            low = await session.scalar(select(func.max(PlatformCreate.platform_id)).where(
                *kind, PlatformCreate.answered_at < lost.asked_at))
            high = await session.scalar(select(func.min(PlatformCreate.platform_id)).where(
                *kind, PlatformCreate.asked_at > lost.answered_at))
        return int(low or 0), None if high is None else int(high)

    async def create_counts(self) -> dict[tuple[str, str], int]:
        """Creates not settled (asking, lost, orphan, held) per (tenant, state)."""
        states = [*OPEN, CreateState.HELD]
        async with self.db.read() as session:
            rows = await session.execute(
                select(PlatformCreate.tenant, PlatformCreate.state, func.count())
                .where(PlatformCreate.state.in_([str(s) for s in states]))
                .group_by(PlatformCreate.tenant, PlatformCreate.state))
            return {(t, s): int(n) for t, s, n in rows}


__all__ = ["LeftoverStore"]
