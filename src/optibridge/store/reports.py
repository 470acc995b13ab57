"""Report batches (exactly-once UpdateCampaignInteractions) and metric running totals."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Float,
    TextualSelect,
    and_,
    any_,
    case,
    column,
    exists,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from optibridge.domain import Backend, BatchState, Event, MetricTotal, ReportBatchRecord
from optibridge.optimove.models import METRIC_OF, REPORTED_AS
from optibridge.store.base import rowcount
from optibridge.store.counts import CountStore, counted
from optibridge.store.leases import LeaseLost
from optibridge.store.schema import (
    UNREPORTED,
    BatchEvent,
    Campaign,
    Interaction,
    MetricReport,
    ReportBatch,
    Send,
    TenantLease,
)

REPORTED_EVENTS = [str(e) for e in REPORTED_AS]
# Batches of a group formed at once on PostgreSQL. Forming rewrites each member row into
# every index of ``interaction`` (a non-HOT update), 150-450 ms a 10,000-row batch on
# this machine: one former at a time paced a pass below Optimove's limit. SQLite has
# one writer, so it forms one at a time.
POSTGRES_FORMERS = 2


def _batch(row: ReportBatch) -> ReportBatchRecord:
    return ReportBatchRecord(
        id=row.id, tenant=row.tenant, campaign_id=row.campaign_id, channel_id=row.channel_id,
        template_id=row.template_id, event_id=row.event_id,
        recipient_group_id=row.recipient_group_id, interaction_date=row.interaction_date,
        size=row.size, state=BatchState(row.state), attempts=row.attempts,
        updated_at=row.updated_at, epoch=row.epoch, backend=Backend(row.backend))


@dataclass(frozen=True)
class BatchEventRecord:
    """One entry of a batch's story: a call, a read-back or an operator's action."""

    kind: str  # call, read_back, requeue, resolve
    actor: str
    state: str | None
    detail: str | None
    epoch: int | None
    at: float


@dataclass(frozen=True)
class BatchDetail:
    """A batch as ``batches show`` prints it."""

    batch: ReportBatchRecord
    created_at: float
    last_error: str | None
    answer: str | None
    events: tuple[BatchEventRecord, ...]


def _fenced(epoch: int | None) -> list[ColumnElement[bool]]:
    """A batch write by a lease holder: only while its epoch is still the tenant's."""
    if epoch is None:
        return []
    return [exists(select(TenantLease.tenant).where(TenantLease.tenant == ReportBatch.tenant,
                                                    TenantLease.epoch == epoch))]


@dataclass(frozen=True)
class ReportGroup:
    """Unreported interactions that go into the same UpdateCampaignInteractions calls."""

    send_id: int
    event: Event
    day: dt.date
    count: int


# What one report batch holds, on either backend: interactions of one send, event and day.
GROUP_KEY = (Interaction.send_id, Interaction.event, Interaction.day)
# Each group with its size and its oldest stored interaction.
GROUP_COLUMNS = (*GROUP_KEY, func.count(), func.min(Interaction.created_at))


def tenant_unreported(sqlite: bool) -> str:
    """``FROM ... WHERE``: a tenant's unreported interactions (``:tenant`` bound), read by
    their partial index, whose own predicate (UNREPORTED) is written out so the planners
    use it. On SQLite the index is also named: without statistics its planner took the
    batch_id index, whose NULLs are every submitted and delivered row (grouping the
    unreported of 10,800,000 interactions: 2.3 s instead of 0.4 s, once a reporting pass)."""
    hint = " INDEXED BY ix_interaction_unreported" if sqlite else ""
    return (f"FROM interaction{hint} JOIN send ON send.id = interaction.send_id "
            "JOIN campaign ON campaign.id = send.campaign_pk "
            f"WHERE campaign.tenant = :tenant AND {UNREPORTED}")


def unreported_groups(tenant: str, *, sqlite: bool) -> TextualSelect:
    """The tenant's groups of unreported interactions: (send, event, day, count, oldest)."""
    return text(  # constants only: the tenant is a bound parameter
        "SELECT interaction.send_id, interaction.event, interaction.day, count(*), "
        f"min(interaction.created_at) {tenant_unreported(sqlite)} "
        "GROUP BY interaction.send_id, interaction.event, interaction.day",
    ).bindparams(tenant=tenant).columns(*GROUP_KEY, column("count", BigInteger),
                                         column("oldest", Float))


def in_group(group: ReportGroup) -> tuple[ColumnElement[bool], ...]:
    """``interaction`` is one of ``group``'s (batched or not)."""
    return (Interaction.send_id == group.send_id, Interaction.event == group.event,
            Interaction.day == group.day)


async def add_group_batch(session: AsyncSession, tenant: str, group: ReportGroup, *,
                          event_id: int, state: BatchState, backend: Backend, now: float
                          ) -> ReportBatch:
    """A new, empty batch for ``group``'s campaign, template, event and day (flushed: it
    has its ID). saveEvent's batches name their send (its forming counts per send)."""
    send = await session.get(Send, group.send_id)
    assert send is not None
    campaign = await session.get(Campaign, send.campaign_pk)
    assert campaign is not None
    batch = ReportBatch(
        tenant=tenant, campaign_id=campaign.campaign_id, channel_id=campaign.channel_id,
        template_id=send.template_id, event_id=event_id, recipient_group_id=1,
        interaction_date=group.day, size=0, state=state, attempts=0, created_at=now,
        updated_at=now, backend=backend,
        send_id=group.send_id if backend == Backend.ENGAGEMENT_EVENTS else None)
    session.add(batch)
    await session.flush()
    return batch


class ReportStore(CountStore):
    async def form_report_batches(self, tenant: str, ready_before: float,
                                  max_size: int = 10_000, limit: int | None = None) -> int:
        """Form every batch that is ready now (at most ``limit``); the number formed."""
        formed = 0
        if limit is not None and limit <= 0:
            return formed
        async with aclosing(self.formed_report_batches(tenant, ready_before, max_size)) as each:
            async for _ in each:
                formed += 1
                if formed == limit:
                    break
        return formed

    async def formed_report_batches(self, tenant: str, ready_before: float, max_size: int
                                    ) -> AsyncGenerator[ReportBatchRecord, None]:
        """Each batch that is ready now, formed (short transactions of their own) as it is
        asked for, so the caller can send one while the next forms."""
        formers = 1 if self.db.sqlite else POSTGRES_FORMERS
        for group in await self.report_groups(tenant, ready_before, max_size):
            left = -(-group.count // max_size)
            while left > 0:
                asked = min(formers, left)
                formed = await self._form_side_by_side(tenant, group, max_size, asked)
                left -= len(formed)
                for batch in formed:
                    yield batch
                if len(formed) < asked:
                    break  # the group has no more (or only what others hold)

    async def _form_side_by_side(self, tenant: str, group: ReportGroup, max_size: int,
                                 formers: int) -> list[ReportBatchRecord]:
        """Up to ``formers`` batches of the group, each in its own transaction, at once."""
        async with asyncio.TaskGroup() as forming:
            tasks = [forming.create_task(self.form_report_batch(tenant, group, max_size))
                     for _ in range(formers)]
        return [batch for task in tasks if (batch := task.result()) is not None]

    async def report_groups(self, tenant: str, ready_before: float, max_size: int
                            ) -> list[ReportGroup]:
        """Groups ready to become batches: full, or their oldest interaction was stored
        before ``ready_before`` (so small groups wait for the next flush instead of
        trickling out one customer a call)."""
        async with self.db.read() as session:
            groups = await session.execute(unreported_groups(tenant, sqlite=self.db.sqlite))
            return [ReportGroup(send_id, Event(event), day, count)
                    for send_id, event, day, count, oldest in groups
                    if count >= max_size or oldest <= ready_before]

    async def form_report_batch(self, tenant: str, group: ReportGroup, max_size: int
                                ) -> ReportBatchRecord | None:
        """One pending batch of the group's oldest unreported interactions, in a short
        transaction of its own (the write connection is shared with the callback inbox);
        None when the group has none left."""
        async with self.db.write() as session:
            batch = await add_group_batch(
                session, tenant, group, event_id=int(REPORTED_AS[group.event]),
                state=BatchState.PENDING, backend=Backend.INTERACTIONS, now=self.clock())
            marked = await session.execute(
                update(Interaction).where(self._members(group, max_size),
                                          Interaction.batch_id.is_(None))
                .values(batch_id=batch.id))
            size = rowcount(marked)
            if not size:
                await session.delete(batch)
                return None
            batch.size = size
            await session.flush()
            return _batch(batch)

    def _members(self, group: ReportGroup, max_size: int) -> ColumnElement[bool]:
        """``interaction.id`` is one of the group's oldest ``max_size`` unreported ones,
        read from the unreported index in id order (it ends with the id), so forming a batch
        reads that many index entries, never the group. The index's predicate is in the
        query literally: a parameter for the event would not prove it (SQLite's rule, and
        PostgreSQL's generic plans)."""
        members = (select(Interaction.id).where(*in_group(group), text(UNREPORTED))
                   .order_by(Interaction.id).limit(max_size))
        if self.db.sqlite:
            return Interaction.id.in_(members)
        # PostgreSQL plans ``IN (subquery)`` as a hash join over every interaction; an
        # array of the IDs looks each up by the primary key. SKIP LOCKED: a former beside
        # this one takes the next oldest instead of waiting for these and finding them
        # taken.
        members = members.with_for_update(skip_locked=True)
        return Interaction.id == any_(func.array(members.scalar_subquery()))

    async def batches(self, tenant: str, states: Sequence[BatchState], limit: int = 100, *,
                      campaign_id: int | None = None, after: int = 0
                      ) -> list[ReportBatchRecord]:
        """Batches in ``states`` by id (those after ``after``, to page on)."""
        query = (select(ReportBatch).where(ReportBatch.tenant == tenant, ReportBatch.id > after,
                                           ReportBatch.state.in_([str(s) for s in states]))
                 .order_by(ReportBatch.id).limit(limit))
        if campaign_id is not None:
            query = query.where(ReportBatch.campaign_id == campaign_id)
        async with self.db.read() as session:
            return [_batch(r) for r in await session.scalars(query)]

    async def batch_counts(self, tenant: str) -> dict[BatchState, int]:
        async with self.db.read() as session:
            rows = await session.execute(
                select(ReportBatch.state, func.count()).where(ReportBatch.tenant == tenant)
                .group_by(ReportBatch.state))
            return {BatchState(state): int(n) for state, n in rows}

    async def batch_detail(self, batch_id: int) -> BatchDetail | None:
        async with self.db.read() as session:
            row = await session.get(ReportBatch, batch_id)
            if row is None:
                return None
            events = await session.scalars(select(BatchEvent).where(
                BatchEvent.batch_id == batch_id).order_by(BatchEvent.id))
            return BatchDetail(_batch(row), row.created_at, row.last_error, row.answer,
                               tuple(BatchEventRecord(e.kind, e.actor, e.state, e.detail,
                                                      e.epoch, e.at) for e in events))

    async def batch_customers(self, batch_id: int) -> list[str]:
        async with self.db.read() as session:
            rows = await session.scalars(select(Interaction.customer_id)
                                         .where(Interaction.batch_id == batch_id)
                                         .order_by(Interaction.id))
            return list(rows)

    async def mark_batch(self, batch_id: int, state: BatchState, *,
                         expect: BatchState | None = None, error: str | None = None,
                         epoch: int | None = None, answer: str | None = None,
                         event: str | None = None, actor: str = "") -> bool:
        """Move a batch to ``state`` (only from ``expect`` when given); False if it was not.

        ``epoch``: the lease epoch of the writer; refused with ``LeaseLost`` once the
        tenant's lease moved on. ``event``: also log this (kind, actor, error) on the batch.
        """
        async with self.db.write() as session:
            query = update(ReportBatch).where(ReportBatch.id == batch_id, *_fenced(epoch))
            if expect is not None:
                query = query.where(ReportBatch.state == expect)
            values: dict[str, object] = {"state": state, "updated_at": self.clock(),
                                         "epoch": epoch}
            if state == BatchState.SENDING:
                values["attempts"] = ReportBatch.attempts + 1
            if error is not None:
                values["last_error"] = error[:2000]
            if answer is not None:
                values["answer"] = answer[:10_000]
            moved = bool(rowcount(await session.execute(query.values(**values))))
            if not moved:
                await self._check_epoch(session, batch_id, epoch)
            elif event is not None:
                self._log_event(session, batch_id, event, actor, state, error, epoch)
            return moved

    async def _check_epoch(self, session: AsyncSession, batch_id: int, epoch: int | None
                           ) -> None:
        if epoch is None:
            return
        current = await session.scalar(
            select(TenantLease.epoch).join(ReportBatch, ReportBatch.tenant == TenantLease.tenant)
            .where(ReportBatch.id == batch_id))
        if current is not None and current != epoch:
            raise LeaseLost(f"report batch {batch_id}: the tenant's lease is at epoch "
                            f"{current}, this process holds epoch {epoch}")

    def _log_event(self, session: AsyncSession, batch_id: int, kind: str, actor: str,
                   state: BatchState | None, detail: str | None, epoch: int | None) -> None:
        session.add(BatchEvent(batch_id=batch_id, kind=kind, actor=actor[:128],
                               state=None if state is None else str(state),
                               detail=None if detail is None else detail[:2000], epoch=epoch,
                               at=self.clock()))

    async def record_batch_event(self, batch_id: int, kind: str, actor: str,
                                 detail: str | None = None, epoch: int | None = None) -> None:
        """Log something that happened to a batch without changing its state (a read-back
        that settled nothing, say)."""
        async with self.db.write() as session:
            self._log_event(session, batch_id, kind, actor, None, detail, epoch)

    async def settle_in_doubt(self, batch_ids: Sequence[int], landed: bool, *, kind: str,
                              actor: str, detail: str | None = None, epoch: int | None = None
                              ) -> list[int]:
        """The one way an in-doubt batch is settled (by a read-back or an operator): sent
        if it landed, pending (to be sent again) if it did not, each logged; all in one
        transaction. Returns the batches that were in doubt and are settled now."""
        state = BatchState.SENT if landed else BatchState.PENDING
        settled: list[int] = []
        async with self.db.write() as session:
            for batch_id in batch_ids:
                result = await session.execute(
                    update(ReportBatch).where(ReportBatch.id == batch_id,
                                              ReportBatch.state == BatchState.IN_DOUBT,
                                              *_fenced(epoch))
                    .values(state=state, updated_at=self.clock(), epoch=epoch))
                if not rowcount(result):
                    await self._check_epoch(session, batch_id, epoch)
                    continue
                self._log_event(session, batch_id, kind, actor, state, detail, epoch)
                settled.append(batch_id)
        return settled

    async def requeue_dead_letters(self, batch_ids: Sequence[int], *, actor: str,
                                   detail: str | None = None) -> list[int]:
        """An operator sends dead-letter batches again (after fixing what Optimove refused);
        returns those that were dead letters and are pending now."""
        requeued: list[int] = []
        async with self.db.write() as session:
            for batch_id in batch_ids:
                result = await session.execute(
                    update(ReportBatch).where(ReportBatch.id == batch_id,
                                              ReportBatch.state == BatchState.DEAD_LETTER)
                    .values(state=BatchState.PENDING, updated_at=self.clock(), epoch=None))
                if rowcount(result):
                    self._log_event(session, batch_id, "requeue", actor, BatchState.PENDING,
                                    detail, None)
                    requeued.append(batch_id)
        return requeued

    async def doubt_interrupted_batches(self, tenant: str, epoch: int | None = None) -> int:
        """Batches left 'sending' by a process that died are in doubt, not pending."""
        async with self.db.write() as session:
            result = await session.execute(
                update(ReportBatch).where(ReportBatch.tenant == tenant,
                                          ReportBatch.state == BatchState.SENDING,
                                          *_fenced(epoch))
                .values(state=BatchState.IN_DOUBT, updated_at=self.clock(), epoch=epoch))
            return rowcount(result)

    async def metric_totals(self, tenant: str, since: float
                            ) -> dict[tuple[int, int, int, int], int]:
        """Running totals per (campaign, channel, template, metric) of the sends made
        after ``since``, from the interaction counts the database keeps."""
        await self.fold_interaction_counts()
        rows = counted()
        metric = case(*((rows.c.event == str(e), int(m)) for e, m in METRIC_OF.items()))
        async with self.db.read() as session:
            found = await session.execute(
                select(Campaign.campaign_id, Campaign.channel_id, Send.template_id,
                       metric, func.sum(rows.c.count))
                .select_from(rows)
                .join(Send, Send.id == rows.c.send_id)
                .join(Campaign, Campaign.id == Send.campaign_pk)
                .where(Campaign.tenant == tenant, Campaign.id.in_(
                    # Totals stay totals: a campaign still sending in the window (triggered
                    # ones do for months) counts all its sends, not only the recent ones.
                    select(Send.campaign_pk).where(Send.created_at >= since)))
                .group_by(Campaign.campaign_id, Campaign.channel_id, Send.template_id, metric))
            return {(c, ch, t, m): int(v) for c, ch, t, m, v in found}

    async def reported_metrics(self, tenant: str
                               ) -> dict[tuple[int, int, int, int], tuple[int, float]]:
        """What Optimove last accepted: (value, when) per metric key."""
        async with self.db.read() as session:
            rows = await session.scalars(select(MetricReport).where(
                MetricReport.tenant == tenant))
            return {(r.campaign_id, r.channel_id, r.template_id, r.metric_id):
                    (r.value, r.reported_at) for r in rows}

    async def record_metrics_reported(self, tenant: str, totals: Sequence[MetricTotal]) -> None:
        async with self.db.write() as session:
            now = self.clock()
            for t in totals:
                await session.merge(MetricReport(
                    tenant=tenant, campaign_id=t.campaign_id, channel_id=t.channel_id,
                    template_id=t.template_id, metric_id=t.metric_id, value=t.value,
                    reported_at=now))

    async def unreported_backlog(self, tenant: str) -> tuple[int, float | None]:
        """(count, oldest stored time) of interactions not yet in a sent batch (those in
        an expired batch, too old for saveEvent, are never sent: no backlog)."""
        async with self.db.read() as session:
            row = (await session.execute(
                select(func.count(), func.min(Interaction.created_at))
                .select_from(Interaction)
                .join(Send, Send.id == Interaction.send_id)
                .join(Campaign, Campaign.id == Send.campaign_pk)
                .outerjoin(ReportBatch, ReportBatch.id == Interaction.batch_id)
                .where(Campaign.tenant == tenant, Interaction.event.in_(REPORTED_EVENTS),
                       and_(ReportBatch.state.is_distinct_from(BatchState.SENT),
                            ReportBatch.state.is_distinct_from(BatchState.EXPIRED))))).one()
            return int(row[0]), row[1]
