"""Failures of background work, one row per item: its back-off and, once stopped, its reason.

An item is named by (tenant, kind, item): the kind says what it is (``WorkKind``), the item
which one (a notification's ID, a campaign's or a send's key, a metrics chunk's campaign).
No row means the item is healthy; the row goes when the item succeeds or is requeued.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select, update

from optibridge.domain import WorkKind, WorkRecord, WorkRetry, WorkState
from optibridge.store.base import StoreBase, rowcount
from optibridge.store.schema import Send, WorkFailure


def _record(row: WorkFailure) -> WorkRecord:
    return WorkRecord(row.tenant, WorkKind(row.kind), row.item, WorkState(row.state),
                      row.attempts, row.refusals, row.last_error, row.first_failed_at,
                      row.failed_at, row.next_at)


class WorkStore(StoreBase):
    async def work_failures(self, tenant: str | None = None, kind: WorkKind | None = None,
                            state: WorkState | None = None) -> list[WorkRecord]:
        query = select(WorkFailure).order_by(WorkFailure.failed_at.desc())
        if tenant is not None:
            query = query.where(WorkFailure.tenant == tenant)
        if kind is not None:
            query = query.where(WorkFailure.kind == kind)
        if state is not None:
            query = query.where(WorkFailure.state == state)
        async with self.db.read() as session:
            return [_record(r) for r in await session.scalars(query)]

    async def work_waiting(self, tenant: str, kind: WorkKind) -> dict[str, WorkRecord]:
        """The items of ``kind`` with a failure on record, by item."""
        return {r.item: r for r in await self.work_failures(tenant, kind)}

    async def record_work_failure(self, tenant: str, kind: WorkKind, item: str, error: str,
                                  *, refused: bool, policy: WorkRetry) -> WorkRecord:
        """Count one failure of an item and set when it is tried again (or stop it)."""
        now = self.clock()
        async with self.db.write() as session:
            row = await session.get(WorkFailure, (tenant, str(kind), item))
            if row is None:
                row = WorkFailure(tenant=tenant, kind=str(kind), item=item, attempts=0,
                                  refusals=0, first_failed_at=now)
                session.add(row)
            row.attempts += 1
            row.refusals += 1 if refused else 0
            row.last_error = error[:2000]
            row.failed_at = now
            row.next_at = now + policy.delay(row.attempts)
            row.state = (WorkState.STOPPED if row.refusals >= policy.max_refusals
                         else WorkState.RETRYING)
            await session.flush()
            return _record(row)

    async def clear_work_failure(self, tenant: str, kind: WorkKind, item: str) -> None:
        async with self.db.write() as session:
            await session.execute(delete(WorkFailure).where(
                WorkFailure.tenant == tenant, WorkFailure.kind == kind,
                WorkFailure.item == item))

    async def requeue_work(self, tenant: str, kinds: Sequence[WorkKind] = (),
                           items: Sequence[str] = (), *, stopped_only: bool = True) -> int:
        """Forget the failures of the chosen items, so the next pass tries them afresh;
        how many were requeued. A requeued send's error goes from the send too (the pass
        that works for it no longer knows it failed)."""
        chosen = [WorkFailure.tenant == tenant]
        if kinds:
            chosen.append(WorkFailure.kind.in_([str(k) for k in kinds]))
        if items:
            chosen.append(WorkFailure.item.in_(list(items)))
        if stopped_only:
            chosen.append(WorkFailure.state == WorkState.STOPPED)
        async with self.db.write() as session:
            sends = await session.scalars(select(WorkFailure.item).where(
                *chosen, WorkFailure.kind.in_([WorkKind.SEND, WorkKind.FOLLOW])))
            send_ids = {int(item) for item in sends if item.isdigit()}
            if send_ids:
                await session.execute(update(Send).where(Send.id.in_(send_ids))
                                      .values(last_error=None))
            return rowcount(await session.execute(delete(WorkFailure).where(*chosen)))

    async def work_failure_counts(self) -> dict[tuple[str, str, str], int]:
        """Failed items per (tenant, kind, state)."""
        async with self.db.read() as session:
            rows = await session.execute(
                select(WorkFailure.tenant, WorkFailure.kind, WorkFailure.state, func.count())
                .group_by(WorkFailure.tenant, WorkFailure.kind, WorkFailure.state))
            return {(t, k, s): int(n) for t, k, s, n in rows}


__all__ = ["WorkStore"]
