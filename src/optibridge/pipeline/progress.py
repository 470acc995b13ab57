"""How far a tenant's work has come: what the demo waits on and the status page shows."""

from __future__ import annotations

from dataclasses import dataclass

from optibridge.config import TenantConfig
from optibridge.domain import FINAL_SEND_STATES, BatchState, CampaignStage, SendState
from optibridge.events_config import Reporting
from optibridge.pipeline.reporting import metrics_due
from optibridge.store import Store
from optibridge.store.event_reports import METRIC_ONLY
from optibridge.store.reports import REPORTED_EVENTS


@dataclass(frozen=True)
class Progress:
    customers_pulled: int
    campaigns_pulling: int
    sends: int
    sends_ready: int  # READY on the platform or finished
    sends_final: int
    inbox_backlog: int
    unreported: int
    oldest_unreported: float | None
    reported: int  # interactions in a sent report batch (reported + unreported: all so far)
    batches_open: int  # pending, sending or in doubt
    metrics_due: int

    @property
    def settled(self) -> bool:
        """Everything pulled, sent, heard back and reported."""
        return (self.campaigns_pulling == 0 and self.sends == self.sends_final
                and self.inbox_backlog == 0 and self.unreported == 0
                and self.batches_open == 0 and self.metrics_due == 0)


async def progress(store: Store, name: str, tenant: TenantConfig) -> Progress:
    pulling = await store.campaigns_in(name, CampaignStage.PULLING)
    pulled = await store.campaigns_in(name, CampaignStage.PULLED)
    sends = await store.sends(name, list(SendState))
    # From the kept totals and the unreported rows' own index, not by counting every
    # interaction: a demo or benchmark polls this every half second while the service
    # works on millions of them. The totals first: what is stored between the reads
    # then shows as a backlog, never as reported.
    stored = await store.interaction_totals(name)
    backlog = await store.report_backlog(name)
    expired = await store.expired_counts(name)  # never sent: not a backlog
    unreported = backlog.count
    reported = sum(stored.get(e, 0) - expired.get(e, 0) for e in REPORTED_EVENTS) - unreported
    if tenant.reporting == Reporting.ENGAGEMENT_EVENTS:
        # saveEvent also takes what UpdateCampaignInteractions never does (delivered, ...).
        extra = {e for e in METRIC_ONLY if tenant.engagement_events.events.name_of(e)}
        counts = await store.event_counts(name)
        unreported += sum(stored_ - sent - expired.get(event, 0)
                          for event, (stored_, sent) in counts.items() if event in extra)
        reported += sum(sent for event, (_, sent) in counts.items() if event in extra)
    batches = await store.batches(name, [BatchState.PENDING, BatchState.SENDING,
                                         BatchState.IN_DOUBT], limit=1_000_000)
    due = await metrics_due(store, name, tenant, refresh=float("inf"))
    return Progress(
        customers_pulled=sum(c.pulled for c in pulling + pulled),
        campaigns_pulling=len(pulling),
        sends=len(sends),
        sends_ready=sum(1 for s in sends if s.state == SendState.READY
                        or s.state in FINAL_SEND_STATES),
        sends_final=sum(1 for s in sends if s.state in FINAL_SEND_STATES),
        inbox_backlog=await store.inbox_backlog(),
        unreported=unreported, oldest_unreported=backlog.oldest, reported=reported,
        batches_open=len(batches), metrics_due=len(due))
