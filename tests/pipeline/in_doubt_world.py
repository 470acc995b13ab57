"""A tenant's reporting pipeline against the Optimove sandbox over real HTTP, and a small
campaign whose events fall on the send date and on later dates (in-doubt tests)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from optibridge.config import TimingConfig, parse_config
from optibridge.domain import AudienceEntry, BatchState, Event, InboxItem, SendState
from optibridge.optimove.client import OptimoveClient
from optibridge.optimove.models import REPORTED_AS
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.reporting import report_interactions
from optibridge.ratelimit import SlidingWindowLimiter
from optibridge.retry import RetryPolicy
from optibridge.sandbox.optimove import AudienceRow, OptimoveSandbox, create_app
from optibridge.serving import serving
from optibridge.signing import UrlSigner
from optibridge.store import open_store

CAMPAIGN, EMAIL = 42, 504
SEND_DAY = dt.date(2026, 11, 20)
SENT_AT = dt.datetime(2026, 11, 20, 23, 30)  # late: opens straddle midnight
Key = tuple[int, int, int, int, int, dt.date, str]
FAST = TimingConfig(in_doubt_wait=0.3, in_doubt_ceiling=20.0, in_doubt_probes=3,
              readback_per_pass=10, report_retry_first=0.05, report_retry_max=0.2)


@asynccontextmanager
async def pipeline(database_url: str, timing: TimingConfig = FAST
                   ) -> AsyncIterator[tuple[TenantContext, OptimoveSandbox]]:
    sandbox = OptimoveSandbox({"k": "t"}, rate_limit=(100_000, 1.0))
    with serving(create_app(sandbox)) as running:
        config = parse_config({
            "server": {"public_url": "http://127.0.0.1:9", "signing_secret": "s" * 16},
            "tenants": {"t": {"optimove_url": running.url, "api_key": "k",
                              "channels": {str(EMAIL): {"type": "email",
                                                        "address_attribute": "Email"}},
                              "platform": {"base_url": "http://127.0.0.1:9",
                                           "api_key": "p", "bounce_domain": 1}}}})
        store = await open_store(database_url)
        client = OptimoveClient(running.url, "k", limiter=SlidingWindowLimiter(100_000, 1.0),
                                retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02))
        ctx = TenantContext(name="t", tenant=config.tenant("t"), config=config, store=store,
                            optimove=client, platform=None,  # type: ignore[arg-type]
                            signer=UrlSigner(b"s" * 16, "http://x"), timing=timing)
        try:
            yield ctx, sandbox
        finally:
            await client.aclose()
            await store.db.dispose()


def _at(day: dt.date, hour: int) -> int:
    return int(dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC).timestamp())


async def campaign(ctx: TenantContext, sandbox: OptimoveSandbox, *, later_days: bool,
                   customers: int = 24, templates: tuple[int, ...] = (7, 8, 9)) -> set[Key]:
    """One campaign, one send per template, its customers opening (on the send date, or
    the day after with ``later_days``), a third clicking two days later, and one customer
    per send opening on two days (a customer no probe may use); the keys to report."""
    record, _ = await ctx.store.open_campaign("t", CAMPAIGN, EMAIL)
    entries = [AudienceEntry(f"C{t}-{i}", t, SENT_AT, f"c{t}-{i}@x.com")
               for t in templates for i in range(customers)]
    await ctx.store.store_audience_page(record.id, "email", 0, entries, True)
    sandbox.load_audience("t", CAMPAIGN, EMAIL, [
        AudienceRow(e.customer_id, e.template_id, SENT_AT) for e in entries])
    sends = {s.template_id: s.id for s in await ctx.store.sends("t", list(SendState))}
    first = SEND_DAY + dt.timedelta(days=1 if later_days else 0)
    items = []
    for t in templates:
        addresses = tuple(f"c{t}-{i}@x.com" for i in range(customers))
        items.append(InboxItem(sends[t], Event.OPENED, _at(first, 23 if not later_days
                                                           else 8), addresses[:-1]))
        # The first customer opens again days later: two reports of one key, so only the
        # last customer (who opens only then) can probe that batch.
        items.append(InboxItem(sends[t], Event.OPENED, _at(SEND_DAY + dt.timedelta(days=3),
                                                           9), (addresses[0], addresses[-1])))
        items.append(InboxItem(sends[t], Event.CLICKED, _at(SEND_DAY + dt.timedelta(days=2),
                                                            10), addresses[::3]))
    await ctx.store.record_callbacks(items)
    while await ctx.store.process_inbox():
        pass
    template_of = {send: t for t, send in sends.items()}
    customer_of = {e.address: e.customer_id for e in entries}
    return {(CAMPAIGN, EMAIL, template_of[item.send_id], int(REPORTED_AS[item.event]), 1,
             dt.datetime.fromtimestamp(item.event_time, dt.UTC).date(), customer_of[address])
            for item in items for address in item.addresses}


async def batch_counts(ctx: TenantContext) -> Counter[str]:
    batches = await ctx.store.batches("t", list(BatchState), limit=100_000)
    return Counter(str(b.state) for b in batches)


async def report_until_settled(ctx: TenantContext, within: float,
                               done: Callable[[], bool] = lambda: False) -> Counter[str]:
    """Reporting passes until no batch is pending or in doubt, or ``done()``, or ``within``
    seconds passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        await report_interactions(ctx, flush_all=True)
        counts = await batch_counts(ctx)
        backlog, _ = await ctx.store.unreported_backlog("t")
        if not (counts["pending"] or counts["in_doubt"] or counts["sending"]) and not backlog:
            return counts
        if done() or loop.time() > deadline:
            return counts
        await asyncio.sleep(0.1)
