"""What in-doubt resolution keeps: the learned read-back lag per tenant, the read-backs of
each in-doubt batch, and which customers of a batch make an unambiguous probe."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, func, insert, literal, select, text, update

from optibridge.domain import Backend, BatchState, InDoubtRead, LagState, ReportBatchRecord
from optibridge.optimove.models import REPORTED_AS
from optibridge.store.base import StoreBase
from optibridge.store.reports import _batch
from optibridge.store.schema import (
    REPORTED_EVENTS,
    BatchReadback,
    Campaign,
    Interaction,
    ReadbackLag,
    ReportBatch,
    Send,
)

EVENT_OF = {int(event_id): str(event) for event, event_id in REPORTED_AS.items()}
PROBE_PAGE = 200  # a batch's customers looked at per query when choosing probes


_LAG_FIELDS = [name for name in LagState.__dataclass_fields__ if name != "tenant"]


class InDoubtStore(StoreBase):
    async def readback_lag(self, tenant: str) -> LagState:
        async with self.db.read() as session:
            row = await session.get(ReadbackLag, tenant)
            if row is None:
                return LagState(tenant)
            return LagState(tenant, **{name: getattr(row, name) for name in _LAG_FIELDS})

    async def readback_lags(self) -> list[LagState]:
        """Every tenant's read-back state (for /metrics and the status page)."""
        async with self.db.read() as session:
            rows = await session.scalars(select(ReadbackLag).order_by(ReadbackLag.tenant))
            return [LagState(r.tenant, **{n: getattr(r, n) for n in _LAG_FIELDS})
                    for r in rows]

    async def save_readback_lag(self, state: LagState) -> None:
        async with self.db.write() as session:
            await session.merge(ReadbackLag(
                tenant=state.tenant, **{name: getattr(state, name) for name in _LAG_FIELDS}))

    async def in_doubt_reads_due(self, tenant: str, now: float, limit: int
                                 ) -> list[tuple[ReportBatchRecord, InDoubtRead]]:
        """In-doubt batches whose next read-back is due, the longest waiting first (so
        every one is reached in turn); registers new in-doubt batches, forgets resolved."""
        await self._sync_in_doubt(tenant)
        async with self.db.read() as session:
            rows = await session.execute(
                select(ReportBatch, BatchReadback)
                .join(BatchReadback, BatchReadback.batch_id == ReportBatch.id)
                .where(BatchReadback.tenant == tenant, BatchReadback.next_read_at <= now,
                       ReportBatch.state == BatchState.IN_DOUBT,
                       ReportBatch.backend == Backend.INTERACTIONS)
                .order_by(BatchReadback.next_read_at, BatchReadback.batch_id).limit(limit))
            return [(_batch(batch), _read(read)) for batch, read in rows]

    async def in_doubt_count(self, tenant: str) -> int:
        """In-doubt batches that a read-back can settle (UpdateCampaignInteractions')."""
        async with self.db.read() as session:
            return int(await session.scalar(
                select(func.count()).select_from(ReportBatch).where(
                    ReportBatch.tenant == tenant, ReportBatch.state == BatchState.IN_DOUBT,
                    ReportBatch.backend == Backend.INTERACTIONS)) or 0)

    async def _sync_in_doubt(self, tenant: str) -> None:
        """Forget the reads of batches no longer in doubt, or in doubt again since (a
        re-sent batch's old empty answers say nothing of its new call); add new ones."""
        async with self.db.write() as session:
            same_doubt = select(ReportBatch.id).where(
                ReportBatch.tenant == tenant, ReportBatch.state == BatchState.IN_DOUBT,
                ReportBatch.id == BatchReadback.batch_id,
                ReportBatch.updated_at == BatchReadback.in_doubt_since)
            await session.execute(delete(BatchReadback).where(
                BatchReadback.tenant == tenant, ~same_doubt.exists()))
            known = select(BatchReadback.batch_id).where(BatchReadback.tenant == tenant)
            await session.execute(insert(BatchReadback).from_select(
                ["batch_id", "tenant", "in_doubt_since", "next_read_at", "reads", "absent"],
                select(ReportBatch.id, ReportBatch.tenant, ReportBatch.updated_at,
                       ReportBatch.updated_at, literal(0), literal(0))
                .where(ReportBatch.tenant == tenant, ReportBatch.state == BatchState.IN_DOUBT,
                       ReportBatch.backend == Backend.INTERACTIONS,
                       ReportBatch.id.not_in(known))))

    async def forget_in_doubt_read(self, batch_id: int) -> None:
        async with self.db.write() as session:
            await session.execute(delete(BatchReadback).where(
                BatchReadback.batch_id == batch_id))

    async def update_in_doubt_read(self, batch_id: int, **values: Any) -> None:
        async with self.db.write() as session:
            await session.execute(update(BatchReadback)
                                  .where(BatchReadback.batch_id == batch_id).values(**values))

    async def clear_customers(self, batch: ReportBatchRecord, limit: int) -> list[str]:
        """Customers of the batch with no other report of its campaign, channel, template
        and event on any date (in any batch or none yet): a read-back row for them can
        only come from this batch, however Optimove counts or dates its rows.

        A page of the batch at a time, its other reports looked up by customer. As one
        query (NOT EXISTS), PostgreSQL's planner read every report of the send for each
        customer: 1.3-1.5 s on 1,000,000 interactions, between a pass and its read-back."""
        # REPORTED_EVENTS in so many words: the customer index holds only those.
        key = (Interaction.event == EVENT_OF[batch.event_id], text(REPORTED_EVENTS),
               Campaign.tenant == batch.tenant, Campaign.campaign_id == batch.campaign_id,
               Campaign.channel_id == batch.channel_id, Send.template_id == batch.template_id)
        clear: list[str] = []
        after = 0
        async with self.db.read() as session:
            while len(clear) < limit:
                page = (await session.execute(
                    select(Interaction.id, Interaction.customer_id)
                    .where(Interaction.batch_id == batch.id, Interaction.id > after)
                    .order_by(Interaction.id).limit(PROBE_PAGE))).all()
                if not page:
                    break
                reports: dict[str, set[int]] = {}
                # A plain IN list, not ``one_of``: behind its JSON function scan PostgreSQL
                # did not take the customer index (report-lost: 12 s from the last call to
                # the read-back instead of under 1 s).
                for customer, row_id in await session.execute(
                        select(Interaction.customer_id, Interaction.id)
                        .join(Send, Send.id == Interaction.send_id)
                        .join(Campaign, Campaign.id == Send.campaign_pk)
                        .where(Interaction.customer_id.in_({c for _, c in page}), *key)):
                    reports.setdefault(customer, set()).add(row_id)
                clear += [customer for row_id, customer in page
                          if reports.get(customer, set()) <= {row_id}]
                after = page[-1][0]
        return clear[:limit]

    async def batch_send_day(self, batch_id: int) -> dt.date | None:
        """The day of the send whose interactions the batch reports."""
        async with self.db.read() as session:
            when = await session.scalar(
                select(Send.scheduled_time).join(Interaction, Interaction.send_id == Send.id)
                .where(Interaction.batch_id == batch_id).limit(1))
            return None if when is None else when.date()

    async def report_batch(self, batch_id: int) -> ReportBatchRecord | None:
        async with self.db.read() as session:
            row = await session.get(ReportBatch, batch_id)
            return None if row is None else _batch(row)

    async def recently_sent(self, tenant: str, limit: int
                            ) -> list[tuple[ReportBatchRecord, float]]:
        """The last batches whose 200 proved they landed, newest first, each with when it
        was formed (before its call went out)."""
        async with self.db.read() as session:
            rows = await session.scalars(
                select(ReportBatch).where(ReportBatch.tenant == tenant,
                                          ReportBatch.state == BatchState.SENT,
                                          ReportBatch.backend == Backend.INTERACTIONS)
                .order_by(ReportBatch.updated_at.desc()).limit(limit))
            return [(_batch(r), r.created_at) for r in rows]


def _read(row: BatchReadback) -> InDoubtRead:
    return InDoubtRead(row.batch_id, row.in_doubt_since, row.next_read_at, row.reads,
                       row.absent, row.problem)
