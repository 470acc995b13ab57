"""Report batches for saveEvent: one event per (send, customer, event, day), formed with the
same discipline as UpdateCampaignInteractions' batches (an interaction is in at most one
batch, of one backend), and events too old for saveEvent set aside in ``expired`` batches."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

from sqlalchemy import Executable, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from optibridge.domain import Backend, BatchEventRow, BatchState, Event, Expired, ReportBatchRecord
from optibridge.optimove.models import METRIC_OF, REPORTED_AS
from optibridge.store.base import StoreBase, rowcount
from optibridge.store.counts import counted
from optibridge.store.reports import (
    GROUP_COLUMNS,
    GROUP_KEY,
    ReportGroup,
    _batch,
    add_group_batch,
    in_group,
    unreported_groups,
)
from optibridge.store.schema import Campaign, Interaction, ReportBatch, Send

# Events UpdateCampaignInteractions never takes: unbatched for good on that backend, so the
# partial index of unreported interactions leaves them out; read per recent send instead.
METRIC_ONLY = [str(e) for e in Event if e not in REPORTED_AS]


class EventReportStore(StoreBase):
    async def event_groups(self, tenant: str, events: Sequence[Event], ready_before: float,
                           max_size: int, sends_since: float) -> list[tuple[ReportGroup, float]]:
        """Groups of unbatched interactions of ``events`` ready to become batches, each
        with its oldest stored time. Submitted and delivered are read only for sends made
        after ``sends_since``."""
        wanted = {str(e) for e in events}
        found: list[tuple[ReportGroup, float]] = []
        async with self.db.read() as session:
            queries: list[Executable] = [unreported_groups(tenant, sqlite=self.db.sqlite)]
            metric_only = sorted(wanted & set(METRIC_ONLY))
            sends = await self._sends_with_unbatched(session, tenant, metric_only, sends_since)
            if sends:
                queries.append(select(*GROUP_COLUMNS).where(
                    Interaction.send_id.in_(sends), Interaction.batch_id.is_(None),
                    Interaction.event.in_(metric_only)).group_by(*GROUP_KEY))
            for query in queries:
                rows = await session.execute(query)
                found += [(ReportGroup(send_id, Event(event), day, count), oldest)
                          for send_id, event, day, count, oldest in rows
                          if event in wanted and (count >= max_size or oldest <= ready_before)]
        return found

    async def _sends_with_unbatched(self, session: AsyncSession, tenant: str,
                                    events: Sequence[str], sends_since: float) -> list[int]:
        """Recent sends with more of ``events`` stored than in saveEvent batches: only
        these are read row by row (the stored counts are kept by the database)."""
        if not events:
            return []
        rows = counted()
        stored = await session.execute(
            select(rows.c.send_id, rows.c.event, func.sum(rows.c.count))
            .join(Send, Send.id == rows.c.send_id)
            .join(Campaign, Campaign.id == Send.campaign_pk)
            .where(Campaign.tenant == tenant, Send.created_at >= sends_since,
                   rows.c.event.in_(list(events)))
            .group_by(rows.c.send_id, rows.c.event))
        wanted = {(int(send), str(event)): int(n) for send, event, n in stored}
        if not wanted:
            return []
        event_of = {int(METRIC_OF[Event(e)]): e for e in events}
        batched = await session.execute(
            select(ReportBatch.send_id, ReportBatch.event_id, func.sum(ReportBatch.size))
            .where(ReportBatch.send_id.in_(sorted({s for s, _ in wanted})),
                   ReportBatch.event_id.in_(list(event_of)))
            .group_by(ReportBatch.send_id, ReportBatch.event_id))
        done = {(int(send), event_of[int(event_id)]): int(n)
                for send, event_id, n in batched if send is not None}
        return sorted({send for (send, event), n in wanted.items()
                       if n > done.get((send, event), 0)})

    async def formed_event_batches(self, tenant: str, events: Sequence[Event],
                                   ready_before: float, max_size: int, cutoff: float,
                                   sends_since: float
                                   ) -> AsyncGenerator[ReportBatchRecord | Expired, None]:
        """Each saveEvent batch ready now, formed as it is asked for; events stored before
        ``cutoff`` come out as ``Expired`` instead (set aside, never sent)."""
        for group, oldest in await self.event_groups(tenant, events, ready_before, max_size,
                                                     sends_since):
            if oldest < cutoff:
                expired = await self._expire_group(tenant, group, cutoff)
                if expired is not None:
                    yield expired
            while True:
                formed = await self._form_event_batch(tenant, group, max_size, cutoff)
                if formed is None:
                    break
                yield formed
                if formed.size < max_size:
                    break

    async def _claim(self, session: AsyncSession, batch: ReportBatch, group: ReportGroup,
                     *, fresh: bool, cutoff: float, limit: int | None) -> int:
        age = Interaction.created_at >= cutoff if fresh else Interaction.created_at < cutoff
        members = (select(Interaction.id).where(*in_group(group),
                                                Interaction.batch_id.is_(None), age)
                   .order_by(Interaction.id).limit(limit))
        marked = await session.execute(
            update(Interaction).where(Interaction.id.in_(members),
                                      Interaction.batch_id.is_(None))
            .values(batch_id=batch.id))
        return rowcount(marked)

    async def _form_event_batch(self, tenant: str, group: ReportGroup, max_size: int,
                                cutoff: float) -> ReportBatchRecord | None:
        async with self.db.write() as session:
            batch = await self._claimed_batch(session, tenant, group, BatchState.PENDING,
                                              cutoff=cutoff, limit=max_size)
            return None if batch is None else _batch(batch)

    async def _expire_group(self, tenant: str, group: ReportGroup, cutoff: float
                            ) -> Expired | None:
        async with self.db.write() as session:
            batch = await self._claimed_batch(session, tenant, group, BatchState.EXPIRED,
                                              cutoff=cutoff, limit=None)
            return None if batch is None else Expired(
                batch.id, batch.campaign_id, group.event, group.day, batch.size)

    async def _claimed_batch(self, session: AsyncSession, tenant: str, group: ReportGroup,
                             state: BatchState, *, cutoff: float, limit: int | None
                             ) -> ReportBatch | None:
        """A new batch in ``state`` holding the group's unbatched events: those stored
        since ``cutoff`` for a pending one, those before it for an expired one. None (and
        no batch) when there are none."""
        batch = await add_group_batch(session, tenant, group,
                                      event_id=int(METRIC_OF[group.event]), state=state,
                                      backend=Backend.ENGAGEMENT_EVENTS, now=self.clock())
        size = await self._claim(session, batch, group, fresh=state == BatchState.PENDING,
                                 cutoff=cutoff, limit=limit)
        if not size:
            await session.delete(batch)
            return None
        batch.size = size
        await session.flush()
        return batch

    async def expire_stale_events(self, batch: ReportBatchRecord, cutoff: float
                                  ) -> Expired | None:
        """Move a pending batch's events stored before ``cutoff`` into an expired batch of
        their own (all of them: the batch itself becomes expired)."""
        async with self.db.write() as session:
            stale = select(Interaction.id).where(Interaction.batch_id == batch.id,
                                                 Interaction.created_at < cutoff)
            count = int(await session.scalar(
                select(func.count()).select_from(stale.subquery())) or 0)
            if not count:
                return None
            row = await session.get(ReportBatch, batch.id)
            assert row is not None
            if row.state != BatchState.PENDING:
                return None
            if count == row.size:
                row.state, row.updated_at = BatchState.EXPIRED, self.clock()
                return Expired(row.id, row.campaign_id, Event(_event_of(row)),
                               row.interaction_date, count)
            aside = ReportBatch(
                tenant=row.tenant, campaign_id=row.campaign_id, channel_id=row.channel_id,
                template_id=row.template_id, event_id=row.event_id,
                recipient_group_id=row.recipient_group_id,
                interaction_date=row.interaction_date, size=count, state=BatchState.EXPIRED,
                attempts=0, created_at=self.clock(), updated_at=self.clock(),
                backend=row.backend, send_id=row.send_id)
            session.add(aside)
            await session.flush()
            await session.execute(update(Interaction).where(Interaction.id.in_(stale))
                                  .values(batch_id=aside.id))
            row.size -= count
            return Expired(aside.id, row.campaign_id, Event(_event_of(row)),
                           row.interaction_date, count)

    async def batch_event_rows(self, batch_id: int) -> list[BatchEventRow]:
        async with self.db.read() as session:
            rows = await session.execute(
                select(Interaction.customer_id, Interaction.created_at, Send.id,
                       Send.scheduled_time)
                .join(Send, Send.id == Interaction.send_id)
                .where(Interaction.batch_id == batch_id).order_by(Interaction.id))
            return [BatchEventRow(*row) for row in rows]

    async def expired_counts(self, tenant: str) -> dict[str, int]:
        """Per event: interactions set aside in expired batches (never sent)."""
        async with self.db.read() as session:
            rows = await session.execute(
                select(Interaction.event, func.count())
                .join(ReportBatch, ReportBatch.id == Interaction.batch_id)
                .where(ReportBatch.tenant == tenant, ReportBatch.state == BatchState.EXPIRED)
                .group_by(Interaction.event))
            return {str(event): int(n) for event, n in rows}

    async def in_doubt_event_batches(self, tenant: str, limit: int = 1_000
                                     ) -> list[ReportBatchRecord]:
        """saveEvent batches in doubt (no read-back: the tenant's policy settles them)."""
        async with self.db.read() as session:
            rows = await session.scalars(
                select(ReportBatch).where(ReportBatch.tenant == tenant,
                                          ReportBatch.state == BatchState.IN_DOUBT,
                                          ReportBatch.backend == Backend.ENGAGEMENT_EVENTS)
                .order_by(ReportBatch.updated_at).limit(limit))
            return [_batch(r) for r in rows]


def _event_of(row: ReportBatch) -> str:
    return next(str(e) for e, m in METRIC_OF.items() if int(m) == row.event_id)
