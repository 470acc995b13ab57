"""What operators look at: recent problems and the per-event reconciliation counts."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from optibridge.domain import BatchState
from optibridge.store.base import StoreBase
from optibridge.store.schema import Campaign, Interaction, Problem, ReportBatch, Send


@dataclass(frozen=True)
class ProblemRecord:
    tenant: str | None
    where: str
    message: str
    at: float


class OpsStore(StoreBase):
    async def record_problem(self, tenant: str | None, where: str, message: str) -> None:
        async with self.db.write() as session:
            session.add(Problem(tenant=tenant, where=where, message=message[:2000],
                                at=self.clock()))

    async def recent_problems(self, limit: int = 20) -> list[ProblemRecord]:
        async with self.db.read() as session:
            rows = await session.scalars(select(Problem).order_by(Problem.id.desc())
                                         .limit(limit))
            return [ProblemRecord(r.tenant, r.where, r.message, r.at) for r in rows]

    async def event_counts(self, tenant: str, campaign_id: int | None = None,
                           channel_id: int | None = None) -> dict[str, tuple[int, int]]:
        """Per event: (interactions stored, interactions in a sent report batch)."""
        query = (select(Interaction.event, func.count(),
                        func.count(ReportBatch.id))
                 .join(Send, Send.id == Interaction.send_id)
                 .join(Campaign, Campaign.id == Send.campaign_pk)
                 .outerjoin(ReportBatch, (ReportBatch.id == Interaction.batch_id)
                            & (ReportBatch.state == BatchState.SENT))
                 .where(Campaign.tenant == tenant).group_by(Interaction.event))
        if campaign_id is not None:
            query = query.where(Campaign.campaign_id == campaign_id)
        if channel_id is not None:
            query = query.where(Campaign.channel_id == channel_id)
        async with self.db.read() as session:
            return {e: (int(n), int(r)) for e, n, r in await session.execute(query)}
