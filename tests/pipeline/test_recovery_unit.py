"""Recoverable errors never make a report batch final: each pauses reporting with back-off
and leaves the batch pending (surely not applied) or in doubt; a 400 about the batch's
own content makes a dead letter with the answer kept."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from optibridge.config import TimingConfig, parse_config
from optibridge.domain import AudienceEntry, BatchState, Event, InboxItem, SendState
from optibridge.optimove.client import OptimoveClient
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.in_doubt import resolve_in_doubt
from optibridge.pipeline.pause import Pause
from optibridge.pipeline.reporting import IN_FLIGHT, report_interactions
from optibridge.ratelimit import SlidingWindowLimiter
from optibridge.retry import RetryPolicy
from optibridge.sandbox.optimove import OptimoveSandbox, create_app
from optibridge.serving import serving
from optibridge.signing import UrlSigner
from optibridge.store import open_store

NOON = int(dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC).timestamp())


@dataclass
class Outage:
    """Between us and the sandbox: answers ``status`` (or times out) instead, while on."""

    status: int | None = None  # None: pass everything through
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    applied_then_lost: bool = False  # forward the call, then lose its answer
    campaign: int | None = None  # only this campaign's calls meet the outage
    slow: float = 0.0  # seconds every other call takes (so the outage's comes back first)
    seen: int = 0


class OutageTransport(httpx.AsyncBaseTransport):
    def __init__(self, outage: Outage) -> None:
        self.outage = outage
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        outage = self.outage
        if outage.status is None or "UpdateCampaign" not in request.url.path \
                or not self._meets(request):
            if outage.slow:
                await asyncio.sleep(outage.slow)
            return await self.inner.handle_async_request(request)
        outage.seen += 1
        if outage.applied_then_lost:
            await (await self.inner.handle_async_request(request)).aread()
            if outage.status == 0:
                raise httpx.ReadTimeout("answer lost", request=request)
        if outage.status == 0:
            raise httpx.ReadTimeout("no answer", request=request)
        return httpx.Response(outage.status, content=outage.body, headers=outage.headers)

    def _meets(self, request: httpx.Request) -> bool:
        wanted = self.outage.campaign
        return wanted is None or json.loads(request.content)["CampaignID"] == wanted

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def world(tmp_path: Path, database_url: str
                ) -> AsyncIterator[tuple[TenantContext, OptimoveSandbox, Outage]]:
    sandbox = OptimoveSandbox({"k": "t"})
    outage = Outage()
    with serving(create_app(sandbox)) as running:
        config = parse_config({
            "server": {"public_url": "http://127.0.0.1:9", "signing_secret": "s" * 16},
            "tenants": {"t": {"optimove_url": running.url, "api_key": "k",
                              "channels": {"504": {"type": "email",
                                                   "address_attribute": "Email"}},
                              "platform": {"base_url": "http://127.0.0.1:9",
                                           "api_key": "p", "bounce_domain": 1}}}})
        store = await open_store(database_url)
        client = OptimoveClient(running.url, "k", limiter=SlidingWindowLimiter(1000, 1.0),
                                retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02),
                                transport=OutageTransport(outage))
        ctx = TenantContext(name="t", tenant=config.tenant("t"), config=config, store=store,
                            optimove=client, platform=None,  # type: ignore[arg-type]
                            signer=UrlSigner(b"s" * 16, "http://x"),
                            timing=TimingConfig(in_doubt_wait=0.0, report_retry_first=0.3,
                                          report_retry_max=1.0))
        yield ctx, sandbox, outage
        await client.aclose()
        await store.db.dispose()


async def opened_by(ctx: TenantContext, customers: int) -> None:
    """``customers`` opened one send: one report batch each (campaigns 42..)."""
    for n in range(customers):
        campaign, _ = await ctx.store.open_campaign("t", 42 + n, 504)
        entries = [AudienceEntry(f"C{n}", 7, dt.datetime(2026, 11, 20, 9), f"c{n}@x.com")]
        await ctx.store.store_audience_page(campaign.id, "email", 0, entries, True)
    for send in await ctx.store.sends("t", list(SendState)):
        customer = (await ctx.store.send_recipients(send.id))[0][1]
        assert customer is not None
        await ctx.store.record_callbacks([InboxItem(send.id, Event.OPENED, NOON, (customer,))])
    await ctx.store.process_inbox()


def held(sandbox: OptimoveSandbox) -> list[str]:
    return sorted(row.customer_id for row in sandbox.reported_interactions("t"))


async def states(ctx: TenantContext) -> dict[BatchState, int]:
    return await ctx.store.batch_counts("t")


RECOVERABLE = {
    "revoked key 401": Outage(401, b'{"error":"unauthorized"}'),
    "forbidden 403": Outage(403, b"Forbidden"),
    "proxy 404": Outage(404, b"<html>Not Found</html>", {"Content-Type": "text/html"}),
    "proxy 408": Outage(408, b"<html>Request Timeout</html>"),
    "proxy 413": Outage(413, b"<html>Request Entity Too Large</html>"),
    "proxy 400 page": Outage(400, b"<html><body>400 Bad Request</body></html>",
                             {"Content-Type": "text/html"}),
    "rate limited 429": Outage(429, b'{"status":429}'),
    "refused 503": Outage(503, b"Service Unavailable"),
    "500 after applying": Outage(500, b"oops", applied_then_lost=True),
    "timeout after applying": Outage(0, applied_then_lost=True),
}


@pytest.mark.parametrize("fault", list(RECOVERABLE), ids=list(RECOVERABLE))
async def test_a_recoverable_error_pauses_reporting_and_nothing_is_final(
        world: tuple[TenantContext, OptimoveSandbox, Outage], fault: str) -> None:
    ctx, sandbox, outage = world
    # A first back-off longer than a pass takes on a loaded machine: the pass goes on
    # after the pause starts (the calls under way end, their batches are marked), and the
    # test checks the pause is still on when it returns.
    ctx.timing = ctx.timing.model_copy(update={"report_retry_first": 1.5,
                                               "report_retry_max": 3.0})
    template = RECOVERABLE[fault]
    outage.__dict__.update(template.__dict__, seen=0)
    await opened_by(ctx, 6)
    assert await report_interactions(ctx, flush_all=True) == 0
    counts = await states(ctx)
    # Sent only by a read-back that found an applied call landed (beside the pass).
    landed = outage.seen if template.applied_then_lost else 0
    assert BatchState.DEAD_LETTER not in counts and counts.get(BatchState.SENT, 0) <= landed, \
        counts
    assert ctx.report_pause.paused and ctx.report_pause.active
    # The pause holds reporting back: no call goes out until it is over.
    tried = outage.seen
    # The calls already under way when the first error came back, and one more: a lone
    # failure does not pause (Pause.strikes), so its sender takes the next batch.
    assert tried <= IN_FLIGHT + Pause.strikes - 1, tried
    assert await report_interactions(ctx, flush_all=True) == 0
    assert outage.seen == tried
    problems = [p for p in await ctx.store.recent_problems() if p.where == "report"]
    assert len(problems) == 1 and "paused" in problems[0].message
    # Still failing after the back-off: one more try, a longer pause, no new problem row.
    first_delay = ctx.report_pause.delay()
    while ctx.report_pause.active:
        await _tick()
    await report_interactions(ctx, flush_all=True)
    assert outage.seen > tried and ctx.report_pause.delay() > first_delay
    assert len([p for p in await ctx.store.recent_problems() if p.where == "report"]) == 1
    # The way to Optimove works again: reporting resumes by itself, each customer once.
    outage.status = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not ctx.report_pause.active:
            await report_interactions(ctx, flush_all=True)
        if (await states(ctx)) == {BatchState.SENT: 6}:
            break
        await _tick()
    assert await states(ctx) == {BatchState.SENT: 6}
    assert held(sandbox) == [f"C{n}" for n in range(6)]
    assert not ctx.report_pause.paused
    messages = [p.message for p in await ctx.store.recent_problems() if p.where == "report"]
    assert "resumed" in messages[0]


async def test_a_400_about_the_batch_is_a_dead_letter_and_the_others_go_on(
        world: tuple[TenantContext, OptimoveSandbox, Outage]) -> None:
    ctx, sandbox, outage = world
    await opened_by(ctx, 3)
    outage.status, outage.body = 400, b'{"error":"TemplateID 7 is not a template"}'
    await report_interactions(ctx, flush_all=True)
    assert await states(ctx) == {BatchState.DEAD_LETTER: 3}
    assert not ctx.report_pause.paused  # one bad batch does not stop the others
    dead = (await ctx.store.batches("t", [BatchState.DEAD_LETTER]))[0]
    detail = await ctx.store.batch_detail(dead.id)
    assert detail is not None and detail.answer == '{"error":"TemplateID 7 is not a template"}'
    assert [(e.kind, e.state) for e in detail.events] == [("call", "dead_letter")]
    outage.status = None
    assert await ctx.store.requeue_dead_letters([dead.id], actor="ops") == [dead.id]
    assert await report_interactions(ctx, flush_all=True) == 1
    assert await states(ctx) == {BatchState.DEAD_LETTER: 2, BatchState.SENT: 1}
    assert len(held(sandbox)) == 1


async def _tick() -> None:
    await asyncio.sleep(0.02)


async def test_one_lost_answer_among_calls_that_work_does_not_pause_reporting(
        world: tuple[TenantContext, OptimoveSandbox, Outage]) -> None:
    """A lone failure is that call's, not Optimove's: the pass goes on with the rest (a
    pause would stop it, and the next pass would pay again for forming)."""
    ctx, sandbox, outage = world
    await opened_by(ctx, 6)
    # Campaign 42's call is applied and its answer lost at once; the others take a while,
    # so the failure comes back while they are under way.
    outage.status, outage.applied_then_lost, outage.campaign, outage.slow = 0, True, 42, 0.2
    assert await report_interactions(ctx, flush_all=True) == 5  # the rest, in this pass
    assert not ctx.report_pause.paused
    assert [p for p in await ctx.store.recent_problems() if p.where == "report"] == []
    outage.status = None
    for _ in range(200):
        await resolve_in_doubt(ctx)
        if await states(ctx) == {BatchState.SENT: 6}:
            break
        await _tick()
    assert await states(ctx) == {BatchState.SENT: 6}
    assert held(sandbox) == [f"C{n}" for n in range(6)]  # each once


@pytest.mark.parametrize("fault", list(RECOVERABLE), ids=list(RECOVERABLE))
async def test_a_recoverable_error_on_metrics_pauses_and_no_campaign_is_failed(
        world: tuple[TenantContext, OptimoveSandbox, Outage], fault: str) -> None:
    from optibridge.domain import WorkKind
    from optibridge.pipeline.reporting import report_metrics

    ctx, sandbox, outage = world
    outage.__dict__.update(RECOVERABLE[fault].__dict__, seen=0)
    await opened_by(ctx, 3)
    assert await report_metrics(ctx) == 0
    assert not ctx.report_pause.paused  # a lone failure may be the call's (Pause.strikes)
    assert await report_metrics(ctx) == 0
    # Two calls (the client's own tries: two each), then the pause holds the rest back.
    assert ctx.report_pause.paused and 2 <= outage.seen <= 4
    assert await report_metrics(ctx) == 0 and outage.seen <= 4
    assert await ctx.store.work_failures("t", WorkKind.METRICS) == []
    outage.status = None
    while ctx.report_pause.active:
        await _tick()
    assert await report_metrics(ctx) > 0
    assert {key[0] for key in sandbox.metrics("t")} == {42, 43, 44}
    assert not ctx.report_pause.paused


async def test_a_refused_metrics_call_fails_its_campaigns_alone_without_a_pause(
        world: tuple[TenantContext, OptimoveSandbox, Outage]) -> None:
    from optibridge.domain import WorkKind
    from optibridge.pipeline.reporting import report_metrics

    ctx, _, outage = world
    outage.status, outage.body = 400, b'{"error":"CampaignID 43 is unknown"}'
    await opened_by(ctx, 3)
    assert await report_metrics(ctx) == 0
    assert not ctx.report_pause.paused  # about its campaigns, not the tenant's reporting
    failed = await ctx.store.work_failures("t", WorkKind.METRICS)
    assert sorted(r.item for r in failed) == ["42/504", "43/504", "44/504"]
    assert all(r.refusals == 1 for r in failed)


async def test_a_batch_in_doubt_mid_pass_is_read_back_beside_the_calls_still_going(
        world: tuple[TenantContext, OptimoveSandbox, Outage]) -> None:
    """Its read-back takes the first slot the pass's report calls leave, not one after
    the pass has ended (on PostgreSQL the read's queries after the last answer were most
    of report-lost's tail)."""
    ctx, sandbox, outage = world
    await opened_by(ctx, 6)
    # Campaign 42's call is applied and its answer lost at once; every other call takes
    # 0.5 s, so the last report calls are still to come when the read-back can go.
    outage.status, outage.applied_then_lost, outage.campaign, outage.slow = 0, True, 42, 0.5
    await report_interactions(ctx, flush_all=True)
    arrived = {e.function: e.monotonic for e in sandbox.journal("t")}  # the last of each
    first_read = min(e.monotonic for e in sandbox.journal("t")
                     if e.function == "GetCustomerChannelInteractions")
    assert first_read < arrived["UpdateCampaignInteractions"]
    assert await states(ctx) == {BatchState.SENT: 6}  # read back in the pass: it landed
    assert held(sandbox) == [f"C{n}" for n in range(6)]
