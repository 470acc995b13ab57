"""The progress the demo and the benchmarks poll, checked against counting every
interaction (what ``progress`` did before it read kept totals and indexes)."""

from __future__ import annotations

from optibridge.config import TenantConfig
from optibridge.events_config import Reporting
from optibridge.pipeline.progress import progress
from optibridge.store import Store
from optibridge.store.event_reports import METRIC_ONLY
from optibridge.store.reports import REPORTED_EVENTS


async def assert_progress_agrees(store: Store, name: str, tenant: TenantConfig) -> None:
    now = await progress(store, name, tenant)
    counted = await store.event_counts(name)
    unreported, oldest = await store.unreported_backlog(name)
    events = set(REPORTED_EVENTS)
    if tenant.reporting == Reporting.ENGAGEMENT_EVENTS:
        extra = {e for e in METRIC_ONLY if tenant.engagement_events.events.name_of(e)}
        expired = await store.expired_counts(name)
        unreported += sum(stored - sent - expired.get(event, 0)
                          for event, (stored, sent) in counted.items() if event in extra)
        events |= extra
    assert (now.unreported, now.oldest_unreported) == (unreported, oldest)
    assert now.reported == sum(sent for event, (_, sent) in counted.items() if event in events)
