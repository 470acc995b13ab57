"""EventTypeID 14 campaigns: where their files are and how far reading them has come."""

from __future__ import annotations

from sqlalchemy import select, update

from optibridge.domain import CampaignRecord, EngagementRecord
from optibridge.store.base import StoreBase
from optibridge.store.campaigns import _campaign, find_or_add_campaign
from optibridge.store.schema import Engagement


def _record(row: Engagement) -> EngagementRecord:
    return EngagementRecord(row.campaign_pk, row.bucket, row.customers_folder,
                            row.metadata_path, row.decryption_key, row.engagement_id,
                            row.metadata_json, row.next_file, row.file_start, row.failures,
                            row.retry_at)


class EngagementStore(StoreBase):
    async def open_engagement(self, tenant: str, campaign_id: int, channel_id: int, *,
                              bucket: str, customers_folder: str, metadata_path: str,
                              decryption_key: str, engagement_id: int | None
                              ) -> tuple[CampaignRecord, bool]:
        """The campaign and where its files are, created together (a campaign never exists
        without its source); ``True`` when new. A campaign known already is left as it is."""
        async with self.db.write() as session:
            now = self.clock()
            row, created = await find_or_add_campaign(session, tenant, campaign_id, channel_id,
                                                      triggered=False, now=now)
            if not created:
                return _campaign(row), False
            session.add(Engagement(campaign_pk=row.id, bucket=bucket,
                                   customers_folder=customers_folder,
                                   metadata_path=metadata_path, decryption_key=decryption_key,
                                   engagement_id=engagement_id, next_file=1, file_start=0,
                                   failures=0, created_at=now))
            return _campaign(row), True

    async def engagement_of(self, campaign_pk: int) -> EngagementRecord | None:
        async with self.db.read() as session:
            row = await session.scalar(select(Engagement).where(
                Engagement.campaign_pk == campaign_pk))
            return None if row is None else _record(row)

    async def engagement_campaigns(self, campaign_pks: list[int]) -> set[int]:
        """Which of these campaigns read their audience from files."""
        if not campaign_pks:
            return set()
        async with self.db.read() as session:
            rows = await session.scalars(select(Engagement.campaign_pk).where(
                Engagement.campaign_pk.in_(campaign_pks)))
            return set(rows)

    async def record_engagement_metadata(self, campaign_pk: int, metadata_json: str) -> None:
        async with self.db.write() as session:
            await session.execute(update(Engagement).where(
                Engagement.campaign_pk == campaign_pk, Engagement.metadata_json.is_(None))
                .values(metadata_json=metadata_json))

    async def start_engagement_file(self, campaign_pk: int, number: int, first: int) -> None:
        """File ``number`` is next; its first customer is the campaign's ``first``-th."""
        async with self.db.write() as session:
            await session.execute(update(Engagement).where(
                Engagement.campaign_pk == campaign_pk)
                .values(next_file=number, file_start=first))

    async def engagement_failed(self, campaign_pk: int, error: str, retry_at: float) -> int:
        """Record a failed read; the failures so far."""
        async with self.db.write() as session:
            row = await session.scalar(select(Engagement).where(
                Engagement.campaign_pk == campaign_pk))
            assert row is not None
            row.failures += 1
            row.retry_at = retry_at
            row.last_error = error[:2000]
            return row.failures

    async def engagement_recovered(self, campaign_pk: int) -> None:
        async with self.db.write() as session:
            await session.execute(update(Engagement).where(
                Engagement.campaign_pk == campaign_pk, Engagement.failures > 0)
                .values(failures=0, retry_at=None, last_error=None))
