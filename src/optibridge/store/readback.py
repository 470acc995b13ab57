"""What the store reported to Optimove, per customer, and who bounced (for read-back,
reconciliation and subscriptions)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from optibridge.domain import Backend, BatchState, Event, ReportedRow
from optibridge.store.base import StoreBase, chunks
from optibridge.store.schema import Campaign, Interaction, Recipient, ReportBatch, Send


class ReadbackStore(StoreBase):
    def _reported_query(self, tenant: str, campaign_id: int, channel_id: int | None
                        ) -> object:
        query = (select(Interaction.customer_id, ReportBatch.interaction_date,
                        ReportBatch.campaign_id, ReportBatch.channel_id,
                        ReportBatch.template_id, ReportBatch.event_id,
                        ReportBatch.recipient_group_id)
                 .join(ReportBatch, ReportBatch.id == Interaction.batch_id)
                 .where(ReportBatch.tenant == tenant, ReportBatch.campaign_id == campaign_id,
                        ReportBatch.state == BatchState.SENT,
                        ReportBatch.backend == Backend.INTERACTIONS))
        if channel_id is not None:
            query = query.where(ReportBatch.channel_id == channel_id)
        return query

    async def reported_customers(self, tenant: str, campaign_id: int,
                                 channel_id: int | None = None) -> list[str]:
        """Every customer reported for the campaign in a sent batch, sorted."""
        query = (select(Interaction.customer_id).distinct()
                 .join(ReportBatch, ReportBatch.id == Interaction.batch_id)
                 .where(ReportBatch.tenant == tenant, ReportBatch.campaign_id == campaign_id,
                        ReportBatch.state == BatchState.SENT,
                        ReportBatch.backend == Backend.INTERACTIONS)
                 .order_by(Interaction.customer_id))
        if channel_id is not None:
            query = query.where(ReportBatch.channel_id == channel_id)
        async with self.db.read() as session:
            return list(await session.scalars(query))

    async def reported_rows(self, tenant: str, campaign_id: int, customers: Sequence[str],
                            channel_id: int | None = None) -> dict[str, list[ReportedRow]]:
        """What sent batches told Optimove about these customers of the campaign."""
        found: dict[str, list[ReportedRow]] = {c: [] for c in customers}
        async with self.db.read() as session:
            for part in chunks(list(customers), 500):
                query = self._reported_query(tenant, campaign_id, channel_id)
                rows = await session.execute(
                    query.where(Interaction.customer_id.in_(list(part))))  # type: ignore[attr-defined]
                for customer, *values in rows:
                    found[customer].append(ReportedRow(*values))
        return found

    async def bounced_customers(self, tenant: str, channel_id: int) -> list[str]:
        """Customers with a bounced message on the channel (their address cannot receive)."""
        async with self.db.read() as session:
            rows = await session.scalars(
                select(Interaction.customer_id).distinct()
                .join(Send, Send.id == Interaction.send_id)
                .join(Campaign, Campaign.id == Send.campaign_pk)
                .where(Campaign.tenant == tenant, Campaign.channel_id == channel_id,
                       Interaction.event == Event.BOUNCED)
                .order_by(Interaction.customer_id))
            return list(rows)

    async def send_recipients(self, send_id: int) -> list[tuple[str, str | None]]:
        """(customer, address) of every recipient of a send."""
        async with self.db.read() as session:
            rows = await session.execute(select(Recipient.customer_id, Recipient.address)
                                         .where(Recipient.send_id == send_id)
                                         .order_by(Recipient.id))
            return [(c, a) for c, a in rows]
