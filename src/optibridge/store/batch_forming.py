"""PostgreSQL: a report batch formed in one statement (one round trip): the group's oldest
unreported interactions locked, the batch inserted with their count, and they marked with it.
SQLite forms it in the same steps one statement at a time (its round trips are function
calls, and it has one writer, so nothing is locked from it meanwhile)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import text

from optibridge.domain import BatchState, ReportBatchRecord
from optibridge.optimove.models import REPORTED_AS
from optibridge.store.schema import UNREPORTED

if TYPE_CHECKING:
    from optibridge.store.reports import ReportGroup, ReportStore

# FOR UPDATE: a concurrent former (another replica's, after a takeover) waits on these
# rows and, once they are marked, skips them, so the count is what the UPDATE marks. The
# sub-statements share one snapshot, which is why the count is taken from ``members``
# rather than from the UPDATE. No batch is inserted when the group has none left.
FORM = text(f"""
WITH members AS (
    SELECT id FROM interaction
    WHERE send_id = :send_id AND event = :event AND day = :day AND {UNREPORTED}
    ORDER BY id LIMIT :max_size FOR UPDATE),
batch AS (
    INSERT INTO report_batch (tenant, campaign_id, channel_id, template_id, event_id,
                              recipient_group_id, interaction_date, size, state, attempts,
                              created_at, updated_at)
    SELECT :tenant, campaign.campaign_id, campaign.channel_id, send.template_id, :event_id,
           1, :day, (SELECT count(*) FROM members), :state, 0, :now, :now
    FROM send JOIN campaign ON campaign.id = send.campaign_pk
    WHERE send.id = :send_id AND EXISTS (SELECT 1 FROM members)
    RETURNING id, campaign_id, channel_id, template_id, size),
marked AS (
    UPDATE interaction SET batch_id = (SELECT id FROM batch)
    WHERE id = ANY(ARRAY(SELECT id FROM members)))
SELECT id, campaign_id, channel_id, template_id, size FROM batch
""")  # noqa: S608 (UNREPORTED is a constant of the schema)


async def form_in_one_statement(store: ReportStore, tenant: str, group: ReportGroup,
                                max_size: int) -> ReportBatchRecord | None:
    now = store.clock()
    async with store.db.write() as session:
        row = (await session.execute(FORM, {
            "send_id": group.send_id, "event": str(group.event), "day": group.day,
            "max_size": max_size, "tenant": tenant, "event_id": int(REPORTED_AS[group.event]),
            "state": str(BatchState.PENDING), "now": now})).first()
    if row is None:
        return None
    batch_id, campaign_id, channel_id, template_id, size = row
    return ReportBatchRecord(
        id=batch_id, tenant=tenant, campaign_id=campaign_id, channel_id=channel_id,
        template_id=template_id, event_id=int(REPORTED_AS[group.event]), recipient_group_id=1,
        interaction_date=group.day, size=size, state=BatchState.PENDING, attempts=0,
        updated_at=now)
