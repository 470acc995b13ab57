"""Read-back (seed 001): what Optimove holds for a customer, and a campaign's
reconciliation of what the store reported against what Optimove returns."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from optibridge.domain import ReportedRow
from optibridge.optimove.client import OptimoveClient
from optibridge.optimove.models import ChannelInteraction
from optibridge.store import Store


def as_row(item: ChannelInteraction) -> ReportedRow:
    return ReportedRow(item.date, item.campaign_id, item.channel_id, item.template_id,
                       item.event_id, item.recipient_group_id)


@dataclass(frozen=True)
class Difference:
    customer_id: str
    row: ReportedRow
    stored: int  # times sent batches reported it
    optimove: int  # times Optimove returns it


@dataclass(frozen=True)
class Reconciliation:
    campaign_id: int
    customers_reported: int
    sampled: tuple[str, ...]
    rows_compared: int
    differences: tuple[Difference, ...]

    @property
    def matches(self) -> bool:
        return not self.differences


def choose_sample(customers: list[str], size: int, seed: int | None = None) -> list[str]:
    """``size`` customers, at random (seeded for a repeatable choice), sorted."""
    if size >= len(customers):
        return list(customers)
    return sorted(random.Random(seed).sample(customers, size))


async def compare_customer(optimove: OptimoveClient, campaign_id: int, customer: str,
                           stored: list[ReportedRow], channel_id: int | None
                           ) -> list[Difference]:
    """Differences between the store's rows and Optimove's for one customer, over the
    dates the store reported."""
    start = min(r.date for r in stored)
    end = max(r.date for r in stored)
    held = await optimove.get_customer_channel_interactions(customer, start, end, channel_id)
    theirs = Counter(as_row(i) for i in held if i.campaign_id == campaign_id
                     and (channel_id is None or i.channel_id == channel_id))
    ours = Counter(stored)
    return [Difference(customer, row, ours[row], theirs[row])
            for row in sorted(set(ours) | set(theirs)) if ours[row] != theirs[row]]


async def reconcile_campaign(store: Store, optimove: OptimoveClient, tenant: str,
                             campaign_id: int, sample: int, *, channel_id: int | None = None,
                             seed: int | None = None,
                             on_sampled: Callable[[int], None] | None = None,
                             on_read: Callable[[], None] | None = None) -> Reconciliation:
    """Compare a sample of the campaign's reported customers with Optimove; ``on_sampled``
    hears how many will be read back, ``on_read`` each one read (a command's progress)."""
    customers = await store.reported_customers(tenant, campaign_id, channel_id)
    chosen = choose_sample(customers, sample, seed)
    stored = await store.reported_rows(tenant, campaign_id, chosen, channel_id)
    if on_sampled is not None:
        on_sampled(len(chosen))
    differences: list[Difference] = []
    for customer in chosen:
        differences += await compare_customer(optimove, campaign_id, customer,
                                              stored[customer], channel_id)
        if on_read is not None:
            on_read()
    return Reconciliation(campaign_id, len(customers), tuple(chosen),
                          sum(len(rows) for rows in stored.values()), tuple(differences))


async def customer_interactions(optimove: OptimoveClient, customer: str, start: dt.date,
                                end: dt.date, channel_id: int | None = None
                                ) -> list[ChannelInteraction]:
    """What Optimove holds for one customer in the date range, oldest first."""
    rows = await optimove.get_customer_channel_interactions(customer, start, end, channel_id)
    return sorted(rows, key=lambda r: (r.date, r.campaign_id, r.template_id, r.event_id))
