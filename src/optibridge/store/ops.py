"""What operators look at: the per-event reconciliation counts (problems: problems.py)."""

from __future__ import annotations

from sqlalchemy import func, insert, select

from optibridge.domain import BatchState
from optibridge.store.base import StoreBase
from optibridge.store.db import Turn
from optibridge.store.schema import Campaign, Interaction, Problem, ReportBatch, Send

# What readiness writes and rolls back: about as much as a big callback needs, so that a
# database that cannot grow (disk full) fails it as it would fail the callback.
PROBE_BYTES = 256 * 1024


class _ProbeDone(Exception):
    """Raised to roll the probe's transaction back."""


class OpsStore(StoreBase):
    async def write_probe(self) -> str | None:
        """None if the database takes a write now, else why not (the write is rolled
        back either way, so readiness leaves nothing behind)."""
        try:
            async with self.db.write(turn=Turn.URGENT) as session:
                await session.execute(insert(Problem).values(
                    tenant=None, where="readyz", message="x" * PROBE_BYTES, at=self.clock()))
                await session.flush()
                raise _ProbeDone
        except _ProbeDone:
            return None
        except Exception as error:  # any failure to write is the answer, not a crash
            return f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"

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
