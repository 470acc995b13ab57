"""Read queries for operators: the status page and the metrics scrape (no writes here)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import func, select, text

from optibridge.domain import BatchState
from optibridge.store.counts import CountStore
from optibridge.store.reports import REPORTED_EVENTS, tenant_unreported
from optibridge.store.schema import (
    CallbackProblem,
    CallbackTotal,
    Campaign,
    Interaction,
    Notification,
    Problem,
    ReportBatch,
    Send,
)

FUNNEL = ("submitted", "delivered", "opened", "clicked", "bounced", "dropped")


@dataclass(frozen=True)
class SendFunnel:
    """One send and its interactions per event (one per customer, event and day)."""

    id: int
    campaign_pk: int
    template_id: int
    channel_type: str
    scheduled_time: dt.datetime
    state: str
    platform_state: str | None
    platform_campaign_id: int | None
    recipients: int
    counts: Mapping[str, int] = field(default_factory=dict)
    last_error: str | None = None  # why its execution last failed (cleared on success)

    def count(self, event: str) -> int:
        return self.counts.get(event, 0)


@dataclass(frozen=True)
class CampaignSummary:
    pk: int
    tenant: str
    campaign_id: int
    channel_id: int
    state: str
    triggered: bool
    pulled: int
    created_at: float
    sends: list[SendFunnel] = field(default_factory=list)

    @property
    def recipients(self) -> int:
        return sum(s.recipients for s in self.sends)

    def total(self, event: str) -> int:
        return sum(s.count(event) for s in self.sends)


@dataclass(frozen=True)
class Backlog:
    """Interactions of reported events not yet in a sent batch, and the oldest one's age."""

    count: int
    oldest: float | None

    def age(self, now: float) -> float:
        return 0.0 if self.oldest is None else max(0.0, now - self.oldest)


def _times(count: int) -> str:
    return f" (heard {count} times)" if count > 1 else ""


@dataclass(frozen=True)
class ErrorRecord:
    at: float
    tenant: str | None
    where: str
    message: str


class StatusStore(CountStore):
    async def campaign_summaries(self, tenant: str | None = None, limit: int = 50,
                                 campaign_pk: int | None = None) -> list[CampaignSummary]:
        """The newest campaigns (or one), each with its sends and their funnels."""
        query = select(Campaign).order_by(Campaign.id.desc()).limit(limit)
        if tenant is not None:
            query = query.where(Campaign.tenant == tenant)
        if campaign_pk is not None:
            query = query.where(Campaign.id == campaign_pk)
        async with self.db.read() as session:
            campaigns = list(await session.scalars(query))
        funnels = await self.send_funnels([c.id for c in campaigns])
        return [CampaignSummary(
            pk=c.id, tenant=c.tenant, campaign_id=c.campaign_id, channel_id=c.channel_id,
            state=c.state, triggered=c.triggered, pulled=c.pulled, created_at=c.created_at,
            sends=funnels.get(c.id, [])) for c in campaigns]

    async def send_funnels(self, campaign_pks: list[int]) -> dict[int, list[SendFunnel]]:
        """Per campaign: its sends, each with its interaction count per event."""
        if not campaign_pks:
            return {}
        async with self.db.read() as session:
            sends = list(await session.scalars(
                select(Send).where(Send.campaign_pk.in_(campaign_pks)).order_by(Send.id)))
        counts = await self.interaction_counts([s.id for s in sends])
        result: dict[int, list[SendFunnel]] = defaultdict(list)
        for s in sends:
            result[s.campaign_pk].append(SendFunnel(
                id=s.id, campaign_pk=s.campaign_pk, template_id=s.template_id,
                channel_type=s.channel_type, scheduled_time=s.scheduled_time, state=s.state,
                platform_state=s.platform_state, platform_campaign_id=s.platform_campaign_id,
                recipients=s.recipients, counts=counts.get(s.id, {}),
                last_error=s.last_error))
        return dict(result)

    async def report_backlog(self, tenant: str) -> Backlog:
        """Like ``unreported_backlog``, but by the indexes: interactions in no batch, plus
        those in a batch that is not sent (nor expired: those are never sent)."""
        unreported = text(  # constants only: the tenant is a bound parameter
            f"SELECT count(*), min(interaction.created_at) {tenant_unreported(self.db.sqlite)}")
        async with self.db.read() as session:
            loose = (await session.execute(unreported, {"tenant": tenant})).one()
            # The reported events as the aggregates' filter, not the query's: as a
            # condition they prove ix_interaction_customer's predicate, and PostgreSQL,
            # its statistics older than the table, read that whole index beside each
            # batch's entries (1.4 s at 20,000,000 interactions with two batches sending).
            reported = Interaction.event.in_(REPORTED_EVENTS)
            held = (await session.execute(
                select(func.count().filter(reported),
                       func.min(Interaction.created_at).filter(reported))
                .join(ReportBatch, ReportBatch.id == Interaction.batch_id)
                .where(ReportBatch.tenant == tenant,
                       ReportBatch.state.not_in([BatchState.SENT, BatchState.EXPIRED])))).one()
        oldest = [t for t in (loose[1], held[1]) if t is not None]
        return Backlog(int(loose[0]) + int(held[0]), min(oldest) if oldest else None)

    async def batch_state_counts(self, campaign: CampaignSummary | None = None
                                 ) -> dict[tuple[str, str], int]:
        """Report batches per (tenant, state): all, or one campaign's."""
        query = (select(ReportBatch.tenant, ReportBatch.state, func.count())
                 .group_by(ReportBatch.tenant, ReportBatch.state))
        if campaign is not None:
            query = query.where(ReportBatch.tenant == campaign.tenant,
                                ReportBatch.campaign_id == campaign.campaign_id,
                                ReportBatch.channel_id == campaign.channel_id)
        async with self.db.read() as session:
            return {(t, s): int(n) for t, s, n in await session.execute(query)}

    async def notification_counts(self) -> dict[str, int]:
        """Optimove listener calls recorded, per tenant."""
        async with self.db.read() as session:
            rows = await session.execute(select(Notification.tenant, func.count())
                                         .group_by(Notification.tenant))
            return {t: int(n) for t, n in rows}

    async def recipients_pulled(self) -> dict[str, int]:
        """Customers pulled from Optimove, per tenant."""
        async with self.db.read() as session:
            rows = await session.execute(select(Campaign.tenant, func.sum(Campaign.pulled))
                                         .group_by(Campaign.tenant))
            return {t: int(n or 0) for t, n in rows}

    async def callbacks_received(self) -> tuple[int, int]:
        """(callbacks stored, events they carried) since the inbox began, as the database
        keeps them (``CallbackTotal``: a row or a few, not the inbox; pruning does not lower
        them)."""
        async with self.db.read() as session:
            row = (await session.execute(
                select(func.sum(CallbackTotal.callbacks), func.sum(CallbackTotal.events)))).one()
            return int(row[0] or 0), int(row[1] or 0)

    async def recent_errors(self, limit: int = 20) -> list[ErrorRecord]:
        """The newest problems, refused or in-doubt batches and callback problems."""
        async with self.db.read() as session:
            problems = await session.scalars(
                select(Problem).order_by(Problem.last_at.desc()).limit(limit))
            errors = [ErrorRecord(p.last_at or p.at, p.tenant, p.where,
                                  p.message + _times(p.count)) for p in problems]
            batches = await session.scalars(
                select(ReportBatch).where(ReportBatch.last_error.is_not(None))
                .order_by(ReportBatch.updated_at.desc()).limit(limit))
            errors += [ErrorRecord(b.updated_at, b.tenant, f"report batch {b.id} ({b.state})",
                                   b.last_error or "") for b in batches]
            callbacks = await session.scalars(
                select(CallbackProblem).order_by(CallbackProblem.last_at.desc()).limit(limit))
            errors += [ErrorRecord(c.last_at or c.received_at, None,
                                   f"callback {c.kind} (send {c.send_id})",
                                   c.detail + _times(c.count)) for c in callbacks]
        return sorted(errors, key=lambda e: e.at, reverse=True)[:limit]


__all__ = ["FUNNEL", "Backlog", "CampaignSummary", "ErrorRecord", "SendFunnel", "StatusStore"]
