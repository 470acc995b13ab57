"""Interactions per send and event as the database keeps them (triggers of migration 0011):
totals read in a few rows instead of a GROUP BY over every interaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Subquery, func, select, text, union_all

from optibridge.store.base import StoreBase
from optibridge.store.schema import Campaign, InteractionCount, InteractionCountDelta, Send

# PostgreSQL: fold the deltas statement triggers appended into the totals, oldest first;
# SKIP LOCKED lets two folders (a replica and a CLI command) share the work, never count
# a delta twice. The totals are updated in (send, event) order, so two folders never
# wait on each other in a cycle.
FOLD = text("""
WITH moved AS (
    DELETE FROM interaction_count_delta WHERE id IN (
        SELECT id FROM interaction_count_delta ORDER BY id LIMIT :limit
        FOR UPDATE SKIP LOCKED)
    RETURNING send_id, event, count)
INSERT INTO interaction_count (send_id, event, count)
SELECT send_id, event, sum(count) FROM moved GROUP BY send_id, event ORDER BY send_id, event
ON CONFLICT (send_id, event) DO UPDATE SET count = interaction_count.count + excluded.count
""")


def counted() -> Subquery:
    """(send_id, event, count): the totals plus the deltas not folded in yet (one
    statement, so one snapshot: a fold is seen entirely or not at all)."""
    return union_all(
        select(InteractionCount.send_id, InteractionCount.event, InteractionCount.count),
        select(InteractionCountDelta.send_id, InteractionCountDelta.event,
               InteractionCountDelta.count)).subquery("counted")


class CountStore(StoreBase):
    async def interaction_counts(self, send_ids: Sequence[int]
                                 ) -> dict[int, dict[str, int]]:
        """Per send: interactions stored per event."""
        if not send_ids:
            return {}
        rows = counted()
        async with self.db.read() as session:
            found = await session.execute(
                select(rows.c.send_id, rows.c.event, func.sum(rows.c.count))
                .where(rows.c.send_id.in_(list(send_ids)))
                .group_by(rows.c.send_id, rows.c.event))
            counts: dict[int, dict[str, int]] = {}
            for send_id, event, n in found:
                counts.setdefault(int(send_id), {})[event] = int(n)
            return counts

    async def interaction_totals(self, tenant: str) -> dict[str, int]:
        """Interactions stored per event, over every campaign of the tenant (those still
        being pulled too: their Dropped are stored, and may be reported, meanwhile)."""
        rows = counted()
        async with self.db.read() as session:
            found = await session.execute(
                select(rows.c.event, func.sum(rows.c.count))
                .join(Send, Send.id == rows.c.send_id)
                .join(Campaign, Campaign.id == Send.campaign_pk)
                .where(Campaign.tenant == tenant).group_by(rows.c.event))
            return {str(event): int(n) for event, n in found}

    async def fold_interaction_counts(self, limit: int = 50_000) -> None:
        """PostgreSQL: fold up to ``limit`` deltas into the totals (SQLite has none)."""
        if self.db.sqlite:
            return
        async with self.db.write() as session:
            await session.execute(FOLD, {"limit": limit})
