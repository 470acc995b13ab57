"""Reporting through saveEvent: under faults every event reaches the sandbox exactly once or
its batch is held in doubt and listed; the in-doubt policy does what it says; events too
old are set aside with a count; a tenant switched between backends reports nothing twice."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from optibridge.config import parse_config
from optibridge.domain import Backend, BatchState, Event, InboxItem, SendState
from optibridge.optimove.client import OptimoveClient
from optibridge.optimove.events import EngagementEventsClient, utc_timestamp
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.event_reporting import formed_event_batches
from optibridge.pipeline.lease import (
    FollowingLimiter,
    FollowingWindow,
    LeasedLimiter,
    LeasedWindow,
    LeaseLost,
    fingerprint,
)
from optibridge.pipeline.progress import progress
from optibridge.pipeline.reporting import report_interactions
from optibridge.ratelimit import SlidingWindowLimiter
from optibridge.retry import RetryPolicy
from optibridge.sandbox.optimove import FaultPlan, MetricTenant, OptimoveSandbox, create_app
from optibridge.serving import serving
from optibridge.signing import UrlSigner
from optibridge.store import open_store
from tests.pipeline.in_doubt_world import (
    CAMPAIGN,
    EMAIL,
    FAST,
    SENT_AT,
    campaign,
    report_until_settled,
)
from tests.progress_check import assert_progress_agrees

TOKEN = "metric-token-t"
TENANT_ID = 77
NAMES = {"submitted": "email_sent", "delivered": "email_delivered", "opened": "email_opened",
         "clicked": "email_clicked", "bounced": "email_bounced", "dropped": "email_dropped",
         "unsubscribed": "", "spam": ""}


def tenant_data(url: str, **section: Any) -> dict[str, Any]:
    return {"optimove_url": url, "api_key": "k", "reporting": "engagement_events",
            "channels": {str(EMAIL): {"type": "email", "address_attribute": "Email"}},
            "platform": {"base_url": "http://127.0.0.1:9", "api_key": "p", "bounce_domain": 1},
            "engagement_events": {
                "tenant_id": TENANT_ID, "token": TOKEN, "events": NAMES, "batch_size": 10,
                "url": url + "/metric-{tenant_id}/api/saveEvent",
                "context": {"campaign_id": "campaign_id", "template_id": "template_id",
                            "date": "date"}, **section}}


def configure(ctx: TenantContext, url: str, **changes: Any) -> None:
    """Switch the tenant's settings, as a restart with an edited file would."""
    config = parse_config({"server": {"public_url": "http://127.0.0.1:9",
                                      "signing_secret": "s" * 16},
                           "tenants": {"t": tenant_data(url, **changes.pop("section", {}))
                                       | changes}})
    ctx.tenant = config.tenant("t")


@asynccontextmanager
async def pipeline(database_url: str, **section: Any
                   ) -> AsyncIterator[tuple[TenantContext, OptimoveSandbox, str]]:
    sandbox = OptimoveSandbox({"k": "t"}, rate_limit=(100_000, 1.0), metric_tenants=[
        MetricTenant("t", TENANT_ID, TOKEN, frozenset(n for n in NAMES.values() if n),
                     max_batch=10)], metric_rate_limit=(100_000, 1.0))
    with serving(create_app(sandbox)) as running:
        config = parse_config({"server": {"public_url": "http://127.0.0.1:9",
                                          "signing_secret": "s" * 16},
                               "tenants": {"t": tenant_data(running.url, **section)}})
        tenant = config.tenant("t")
        store = await open_store(database_url)
        client = OptimoveClient(running.url, "k", limiter=SlidingWindowLimiter(100_000, 1.0),
                                retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02))
        events = EngagementEventsClient(tenant.engagement_events.endpoint(), TOKEN.encode(),
                                        limiter=SlidingWindowLimiter(100_000, 1.0),
                                        timeout=5.0)
        ctx = TenantContext(name="t", tenant=tenant, config=config, store=store,
                            optimove=client, platform=None,  # type: ignore[arg-type]
                            signer=UrlSigner(b"s" * 16, "http://x"), timing=FAST,
                            events=events)
        try:
            yield ctx, sandbox, running.url
        finally:
            await client.aclose()
            await events.aclose()
            await store.db.dispose()


EventKey = tuple[str, str, str, str]


async def expected_events(ctx: TenantContext) -> dict[int, list[EventKey]]:
    """Every stored interaction as the sandbox would count it, by the batch it is in."""
    found: dict[int, list[EventKey]] = {}
    for batch in await ctx.store.batches("t", list(BatchState), limit=100_000):
        if batch.backend != Backend.ENGAGEMENT_EVENTS or batch.state == BatchState.EXPIRED:
            continue
        event = next(e for e in Event if e == _event(batch.event_id))
        for row in await ctx.store.batch_event_rows(batch.id):
            context = {"campaign_id": batch.campaign_id, "template_id": batch.template_id,
                       "date": batch.interaction_date.isoformat()}
            found.setdefault(batch.id, []).append((
                NAMES[str(event)], row.customer_id,
                utc_timestamp(dt.datetime.fromtimestamp(row.stored_at, dt.UTC)),
                json.dumps(context, sort_keys=True)))
    return found


def _event(event_id: int) -> Event:
    from optibridge.optimove.models import METRIC_OF

    return next(e for e, m in METRIC_OF.items() if int(m) == event_id)


async def settle(ctx: TenantContext, total: int, within: float) -> Counter[str]:
    """Reporting passes until all ``total`` interactions are in batches and none is pending
    or being sent (held in-doubt batches stay), or ``within`` seconds passed."""
    deadline = time.monotonic() + within
    while True:
        await report_interactions(ctx, flush_all=True)
        batches = await ctx.store.batches("t", list(BatchState), limit=100_000)
        counts = Counter(str(b.state) for b in batches)
        if (not counts["pending"] and not counts["sending"]
                and sum(b.size for b in batches) == total) or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.05)


async def delivered_too(ctx: TenantContext, customers: int = 24) -> None:
    """Every customer's message delivered (an event UpdateCampaignInteractions never takes)."""
    items = [InboxItem(send.id, Event.DELIVERED, int(time.time()),
                       tuple(f"c{send.template_id}-{i}@x.com" for i in range(customers)))
             for send in await ctx.store.sends("t", list(SendState))]
    await ctx.store.record_callbacks(items)
    while await ctx.store.process_inbox():
        pass


async def test_under_faults_every_event_lands_once_or_is_held_and_listed(
        database_url: str) -> None:
    async with pipeline(database_url) as (ctx, sandbox, _):
        keys = await campaign(ctx, sandbox, later_days=False, customers=20)
        await delivered_too(ctx, 20)
        sandbox.set_faults(FaultPlan(error_rate=0.1, rate_limit_rate=0.1,
                                     lost_response_rate=0.1, error_body_rate=0.1, seed=3,
                                     functions=frozenset({"saveEvent"})))
        counts = await settle(ctx, len(keys) + 3 * 20, 30.0)
        assert counts["pending"] == 0 and counts["sending"] == 0
        assert counts["in_doubt"] > 0, counts  # the faults did make some doubts
        expected = await expected_events(ctx)
        held = {b.id for b in await ctx.store.batches("t", [BatchState.IN_DOUBT])}
        got = sandbox.event_counts("t")
        assert max(got.values()) == 1  # nothing counted twice
        for batch_id, batch_keys in expected.items():
            if batch_id not in held:
                assert all(got[key] == 1 for key in batch_keys), batch_id
        assert {str(e) for e in Event if e != Event.SUBMITTED} >= \
            {str(_event(b.event_id)) for b in await ctx.store.batches("t", list(BatchState))}
        # The operator checks the sandbox and resolves each held batch: then all once.
        for batch_id in held:
            landed = all(got[key] == 1 for key in expected[batch_id])
            assert landed or not any(got[key] for key in expected[batch_id])
            assert await ctx.store.settle_in_doubt([batch_id], landed, kind="resolve",
                                                   actor="operator")
        sandbox.set_faults(None)
        await report_until_settled(ctx, 10.0)
        got = sandbox.event_counts("t")
        every = [key for keys in (await expected_events(ctx)).values() for key in keys]
        assert len(every) == len(set(every)) and Counter(got) == Counter(every)


async def test_resend_after_sends_an_in_doubt_batch_again_after_the_time(
        database_url: str) -> None:
    async with pipeline(database_url, in_doubt="resend_after",
                        resend_after_seconds=0.3) as (ctx, sandbox, _):
        await campaign(ctx, sandbox, later_days=False, customers=6, templates=(7,))
        sandbox.set_faults(FaultPlan(error_rate=1.0, functions=frozenset({"saveEvent"})))
        counts = await report_until_settled(ctx, 0.5)
        assert counts["in_doubt"] and not sandbox.received_events("t")
        sandbox.set_faults(None)
        counts = await report_until_settled(ctx, 10.0)
        assert counts["in_doubt"] == 0 and counts["sent"]
        every = [key for keys in (await expected_events(ctx)).values() for key in keys]
        assert Counter(sandbox.event_counts("t")) == Counter(every)
        first = (await ctx.store.batches("t", [BatchState.SENT]))[0]
        detail = await ctx.store.batch_detail(first.id)
        assert detail is not None and "policy" in [e.kind for e in detail.events]


async def test_held_batches_are_one_problem_each_and_wait_for_an_operator(
        database_url: str) -> None:
    async with pipeline(database_url) as (ctx, sandbox, _):
        await campaign(ctx, sandbox, later_days=False, customers=4, templates=(7,))
        [send] = await ctx.store.sends("t", list(SendState))
        await ctx.store.record_callbacks([InboxItem(  # saveEvent takes delivered too
            send.id, Event.DELIVERED, int(SENT_AT.replace(tzinfo=dt.UTC).timestamp()),
            ("c7-0@x.com", "c7-1@x.com"))])
        assert await ctx.store.process_inbox()
        sandbox.set_faults(FaultPlan(lost_response_rate=1.0,
                                     functions=frozenset({"saveEvent"})))
        for _ in range(3):
            await report_until_settled(ctx, 0.3)
        held = await ctx.store.batches("t", [BatchState.IN_DOUBT])
        assert held and len(sandbox.received_events("t")) == sum(b.size for b in held)
        # Delivered and sent held too: counted once in the demo's backlog, not twice.
        await assert_progress_agrees(ctx.store, "t", ctx.tenant)
        problems = [p for p in await ctx.store.recent_problems(100) if "held in doubt" in p.message]
        assert len(problems) == len(held) and all(p.count == 1 for p in problems)
        assert "optibridge batches resolve" in problems[0].message
        # Resolved "not landed" by an operator, sent again, in doubt again: told again.
        again = held[0]
        assert await ctx.store.settle_in_doubt([again.id], False, kind="resolve", actor="op")
        # Passes until the new doubt is told (a loaded machine may need more than one
        # 0.3 s round), then more: it is told once.
        told = []
        for _ in range(10):
            await report_until_settled(ctx, 0.3)
            told = [p.count for p in await ctx.store.recent_problems(100)
                    if f"report batch {again.id} " in p.message]
            if told != [1]:
                break
        await report_until_settled(ctx, 0.3)
        problems = [p for p in await ctx.store.recent_problems(100)
                    if f"report batch {again.id} " in p.message]
        assert told == [p.count for p in problems] == [2]


async def test_events_older_than_7_days_are_set_aside_with_a_count(database_url: str) -> None:
    async with pipeline(database_url) as (ctx, sandbox, _):
        ctx.store.clock = lambda: time.time() - 8 * 86_400
        keys = await campaign(ctx, sandbox, later_days=False, customers=5, templates=(7,))
        ctx.store.clock = time.time
        counts = await settle(ctx, len(keys), 5.0)
        assert counts == Counter({"expired": counts["expired"]}) and counts["expired"]
        assert sandbox.received_events("t") == []
        problems = [p.message for p in await ctx.store.recent_problems(100)]
        assert any("older than 7 days and were not sent" in m and "opened events" in m
                   for m in problems), problems
        # Never sent, so no backlog: the status page and the demo's wait are settled.
        assert await ctx.store.unreported_backlog("t") == (0, None)
        assert (await progress(ctx.store, "t", ctx.tenant)).unreported == 0


async def test_a_backend_switch_mid_campaign_reports_nothing_twice(database_url: str) -> None:
    async with pipeline(database_url) as (ctx, sandbox, url):
        configure(ctx, url, reporting="interactions")
        keys = await campaign(ctx, sandbox, later_days=True, customers=12, templates=(7, 8))
        # Some batches formed (pending) under interactions, then the switch.
        formed = await ctx.store.form_report_batches("t", time.time() + 1, 5, limit=3)
        assert formed == 3
        configure(ctx, url)
        await delivered_too(ctx, 12)
        await report_until_settled(ctx, 10.0)
        batches = await ctx.store.batches("t", list(BatchState), limit=10_000)
        assert {b.state for b in batches} == {BatchState.SENT}
        by_backend = Counter(b.backend for b in batches)
        assert by_backend[Backend.INTERACTIONS] == 3 and by_backend[Backend.ENGAGEMENT_EVENTS]
        # Each interaction once, in one place: Optimove's interactions or saveEvent's events.
        interactions = sandbox.interaction_counts("t")
        assert max(interactions.values()) == 1
        events = sandbox.event_counts("t")
        assert max(events.values()) == 1
        as_event = {(NAMES[{2: "opened", 3: "clicked"}[k[3]]], k[6],
                     json.dumps({"campaign_id": CAMPAIGN, "date": k[5].isoformat(),
                                 "template_id": k[2]}, sort_keys=True)) for k in keys}
        seen_events = {(e[0], e[1], e[3]) for e in events}
        seen_interactions = {(NAMES[{2: "opened", 3: "clicked"}[k[3]]], k[6],
                              json.dumps({"campaign_id": k[0], "date": k[5].isoformat(),
                                          "template_id": k[2]}, sort_keys=True))
                             for k in interactions}
        assert not seen_events & seen_interactions
        assert as_event == (seen_events - {e for e in seen_events
                                           if e[0] == "email_delivered"}) | seen_interactions
        # And back: nothing is sent again.
        configure(ctx, url, reporting="interactions")
        await report_until_settled(ctx, 2.0)
        assert sandbox.interaction_counts("t") == interactions
        assert sandbox.event_counts("t") == events


async def test_saveevent_batches_without_a_token_wait_and_pause_nothing(
        database_url: str) -> None:
    async with pipeline(database_url) as (ctx, sandbox, url):
        await campaign(ctx, sandbox, later_days=False, customers=6, templates=(7,))
        formed = [b async for b in formed_event_batches(ctx, time.time() + 1)]
        assert formed
        # Switched back to interactions, the saveEvent token dropped; new opens arrive.
        configure(ctx, url, reporting="interactions")
        ctx.events = None
        send = (await ctx.store.sends("t", list(SendState)))[0]
        later = int(time.time()) + 86_400
        await ctx.store.record_callbacks([InboxItem(send.id, Event.OPENED, later,
                                                    ("c7-1@x.com", "c7-2@x.com"))])
        while await ctx.store.process_inbox():
            pass
        for _ in range(2):
            await report_interactions(ctx, flush_all=True)
        assert not ctx.report_pause.active
        batches = await ctx.store.batches("t", list(BatchState), limit=1_000)
        assert {b.state for b in batches if b.backend == Backend.ENGAGEMENT_EVENTS} == \
            {BatchState.PENDING}
        assert {b.state for b in batches if b.backend == Backend.INTERACTIONS} == \
            {BatchState.SENT}
        assert len(sandbox.interaction_counts("t")) == 2 and not sandbox.received_events("t")
        waiting = [p for p in await ctx.store.recent_problems(100)
                   if "no saveEvent token" in p.message]
        assert len(waiting) == 1 and waiting[0].count == 1


async def test_save_event_calls_go_under_the_lease_after_a_successors_wait(
        database_url: str) -> None:
    store = await open_store(database_url)
    try:
        window = LeasedWindow(store, "api-key", 50, 1.0, tenant="t", holder="h")
        primary = LeasedLimiter(window)
        follower = FollowingLimiter(FollowingWindow(store, "saveEvent:x", 5, 1.0, window),
                                    primary)
        with pytest.raises(LeaseLost):  # not held: refused, nothing counted
            async with follower.slot():
                pass
        asked = time.monotonic()
        primary.held(await store.acquire_lease("t", "h", 30.0), asked, took_over=True)
        async with follower.slot():
            assert time.monotonic() >= primary.not_before  # the successor waited first
        # Counted in saveEvent's own window, not the API key's.
        assert await store.calls_in_window(fingerprint("saveEvent:x"), 5.0) == 1
        assert await store.calls_in_window(fingerprint("api-key"), 5.0) == 0
        primary.lost()
        with pytest.raises(LeaseLost):
            async with follower.slot():
                pass
    finally:
        await store.db.dispose()
