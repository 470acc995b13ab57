"""What operators look at: the per-event reconciliation counts (problems: problems.py)."""

from __future__ import annotations

from sqlalchemy import func, select

from optibridge.domain import BatchState
from optibridge.store.base import StoreBase
from optibridge.store.schema import Campaign, Interaction, ReportBatch, Send


class OpsStore(StoreBase):
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
