"""Issue 13 items 1, 5, 6 (and issue 16's refused send): one bad item of background work
fails alone, backs off, stops with its reason after bounded refusals and can be requeued;
EventTypeID 1 does not pull a channel whose 13 is registered; a repeated trigger is sent
once. Both sandboxes over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from optibridge.cli.tenants import tenant_context
from optibridge.domain import (
    AudienceEntry,
    BatchState,
    CampaignStage,
    ChannelType,
    SendState,
    WorkKind,
    WorkState,
)
from optibridge.optimove.inbound import parse_trigger
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.execution import execute_pending_sends
from optibridge.pipeline.reporting import report_metrics
from optibridge.pipeline.triggered import gather_triggers, to_new_trigger
from optibridge.pipeline.worker import pull_step
from optibridge.retry import RetryPolicy as ClientRetry
from optibridge.sandbox.optimove.state import AudienceRow
from optibridge.serving import start_server
from optibridge.store import Store
from tests.worlds import EMAIL, SMS, TENANT, TRIGGERED, World, open_world
from tests.worlds import config_data as features_config

UNKNOWN_TO_OPTIMOVE, SCHEDULED_UNKNOWN = 512, 513  # channels the Optimove sandbox refuses
MAX_REFUSALS = 3
FAST = {"retry_first": 0.01, "retry_longest": 0.02, "max_refusals": MAX_REFUSALS}
SOON = dt.datetime(2030, 1, 1, 9)


def config_data(database_url: str, optimove_url: str, platform_url: str, port: int
                ) -> dict[str, Any]:
    """The features config, fast retries, and a triggered and a scheduled channel that the
    Optimove sandbox does not know (so Optimove refuses their metrics and pulls)."""
    data = features_config(database_url, optimove_url, platform_url, port)
    data["timing"].update(retry_first=0.05, retry_longest=0.2, max_refusals=3)
    channels = data["tenants"][TENANT]["channels"]
    channels[str(UNKNOWN_TO_OPTIMOVE)] = {**channels[str(TRIGGERED)]}
    channels[str(SCHEDULED_UNKNOWN)] = {**channels[str(EMAIL)]}
    return data


@pytest.fixture
def world(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[World]:
    with open_world(database_url, tmp_path, monkeypatch, source="isolation", seed=5,
                    data_of=config_data) as made:
        yield made


@asynccontextmanager
async def context(world: World) -> AsyncIterator[TenantContext]:
    async with tenant_context(world.config, TENANT) as ctx:
        ctx.timing = ctx.timing.model_copy(update=FAST)
        yield ctx


def rows(prefix: str, count: int, template: int = 1,
         when: dt.datetime = SOON) -> list[AudienceRow]:
    return [AudienceRow(f"{prefix}{i}", template, when,
                        {"Email": f"{prefix.lower()}{i}@example.com", "FirstName": "Ada"})
            for i in range(count)]


async def passes(step: Any, ctx: TenantContext, count: int) -> None:
    """Run a worker step ``count`` times, as its loop would, past any back-off."""
    for _ in range(count):
        await step(ctx)
        await asyncio.sleep(0.03)


async def failure(store: Store, kind: WorkKind, item: object) -> Any:
    found = await store.work_failures(TENANT, kind)
    return next((r for r in found if r.item == str(item)), None)


# --- cancellation: 404 means gone; a failing notification never blocks later ones -----

async def test_a_cancelled_campaign_gone_from_the_platform_is_done_and_later_notes_go_on(
        world: World) -> None:
    async with context(world) as ctx:
        campaign, _ = await ctx.store.open_campaign(TENANT, 10, EMAIL)
        await ctx.store.store_audience_page(campaign.id, "email", 0, [
            AudienceEntry("C1", 1, SOON, "c1@example.com")], True)
        send = (await ctx.store.sends(TENANT, list(SendState)))[0]
        # READY on a platform campaign that the platform no longer has: a 404.
        await ctx.store.update_send(send.id, state=SendState.READY,
                                    platform_campaign_id=987_654)
        world.optimove.load_audience(TENANT, 20, EMAIL, rows("B", 3))
        await ctx.store.record_notification(TENANT, 4, 10, EMAIL, {})
        await ctx.store.record_notification(TENANT, 13, 20, EMAIL, {})
        await passes(pull_step, ctx, 2)
        cancelled = await ctx.store.get_send(send.id)
        later = await ctx.store.get_campaign(TENANT, 20, EMAIL)
        assert cancelled is not None and cancelled.state == SendState.CANCELLED
        assert later is not None and later.stage == CampaignStage.PULLED and later.pulled == 3
        assert await ctx.store.pending_notifications(TENANT) == []
        assert await ctx.store.work_failures(TENANT) == []


class RefusingPlatform:
    """The real platform client, but one platform campaign's reads are refused (a 400)."""

    def __init__(self, inner: Any, refused: int) -> None:
        self.inner, self.refused = inner, refused

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get_campaign(self, campaign_id: int) -> Any:
        from optibridge.platform.errors import PlatformRequestRejected
        if campaign_id == self.refused:
            raise PlatformRequestRejected("get_campaign", f"400: campaign {campaign_id} "
                                          "is corrupt", 400)
        return await self.inner.get_campaign(campaign_id)


async def test_a_cancellation_that_keeps_failing_stops_alone_and_can_be_requeued(
        world: World) -> None:
    async with context(world) as ctx:
        ctx.platform = RefusingPlatform(ctx.platform, 555)
        campaign, _ = await ctx.store.open_campaign(TENANT, 10, EMAIL)
        await ctx.store.store_audience_page(campaign.id, "email", 0, [
            AudienceEntry("C1", 1, SOON, "c1@example.com")], True)
        send = (await ctx.store.sends(TENANT, list(SendState)))[0]
        await ctx.store.update_send(send.id, state=SendState.READY, platform_campaign_id=555)
        world.optimove.load_audience(TENANT, 20, EMAIL, rows("B", 2))
        poisoned = await ctx.store.record_notification(TENANT, 4, 10, EMAIL, {})
        await ctx.store.record_notification(TENANT, 13, 20, EMAIL, {})
        await passes(pull_step, ctx, 6)
        later = await ctx.store.get_campaign(TENANT, 20, EMAIL)
        assert later is not None and later.stage == CampaignStage.PULLED
        stopped = await failure(ctx.store, WorkKind.CANCELLATION, poisoned)
        assert stopped is not None and stopped.state == WorkState.STOPPED
        assert stopped.attempts == MAX_REFUSALS and "is corrupt" in stopped.last_error
        assert [n.id for n in await ctx.store.pending_notifications(TENANT)] == [poisoned]
        # Fixed on the platform's side; an operator requeues it.
        ctx.platform = ctx.platform.inner
        result = await asyncio.to_thread(world.cli, "work", "requeue", "cancellation",
                                         str(poisoned))
        assert result.exit_code == 0, result.output
        assert "requeued 1 item" in result.output
        await passes(pull_step, ctx, 1)
        assert await ctx.store.pending_notifications(TENANT) == []
        assert await ctx.store.work_failures(TENANT) == []


def test_the_work_command_names_every_kind() -> None:
    from optibridge.cli.work import KINDS
    assert KINDS.split(", ") == [str(k) for k in WorkKind]


# --- pulls -------------------------------------------------------------------------------

async def test_one_failing_pull_does_not_hold_up_the_others(world: World) -> None:
    # Optimove refuses this campaign's pull (400: a ChannelID it does not know).
    world.optimove.load_audience(TENANT, 40, EMAIL, rows("H", 5))
    async with context(world) as ctx:
        await ctx.store.record_notification(TENANT, 13, 30, SCHEDULED_UNKNOWN, {})
        await ctx.store.record_notification(TENANT, 13, 40, EMAIL, {})
        await passes(pull_step, ctx, 6)
        healthy = await ctx.store.get_campaign(TENANT, 40, EMAIL)
        poisoned = await ctx.store.get_campaign(TENANT, 30, SCHEDULED_UNKNOWN)
        assert healthy is not None and healthy.stage == CampaignStage.PULLED
        assert healthy.pulled == 5
        assert poisoned is not None and poisoned.stage == CampaignStage.PULLING
        stopped = await failure(ctx.store, WorkKind.PULL, f"30/{SCHEDULED_UNKNOWN}")
        assert stopped is not None and stopped.state == WorkState.STOPPED
        assert stopped.attempts == MAX_REFUSALS


async def test_a_pull_that_fails_for_an_outage_backs_off_and_never_stops(
        world: World) -> None:
    from optibridge.sandbox.optimove.faults import FaultPlan
    world.optimove.load_audience(TENANT, 40, EMAIL, rows("H", 5))
    world.optimove.set_faults(FaultPlan(error_rate=1.0,
                                        functions=frozenset({"GetCustomerSendDetailsByChannel"})))
    async with context(world) as ctx:
        ctx.optimove._retry = ClientRetry(attempts=1)
        await ctx.store.record_notification(TENANT, 13, 40, EMAIL, {})
        await passes(pull_step, ctx, 6)
        failing = await failure(ctx.store, WorkKind.PULL, f"40/{EMAIL}")
        assert failing is not None and failing.state == WorkState.RETRYING
        assert failing.attempts >= MAX_REFUSALS and failing.refusals == 0
        world.optimove.set_faults(None)
        await passes(pull_step, ctx, 1)
        pulled = await ctx.store.get_campaign(TENANT, 40, EMAIL)
        assert pulled is not None and pulled.pulled == 5
        assert await ctx.store.work_failures(TENANT) == []


# --- EventTypeID 1 versus 13 ---------------------------------------------------------

async def test_event_1_before_the_channel_is_ready_pulls_nothing_and_13_pulls_it_all(
        world: World) -> None:
    world.optimove.load_audience(TENANT, 50, EMAIL, rows("A", 2))  # still being computed
    async with context(world) as ctx:
        await ctx.store.record_notification(TENANT, 1, 50, None, {})
        await passes(pull_step, ctx, 2)
        assert await ctx.store.get_campaign(TENANT, 50, EMAIL) is None
        world.optimove.clear_audience(TENANT, 50, EMAIL)
        world.optimove.load_audience(TENANT, 50, EMAIL, rows("A", 6))  # complete now
        await ctx.store.record_notification(TENANT, 13, 50, EMAIL, {})
        await passes(pull_step, ctx, 2)
        campaign = await ctx.store.get_campaign(TENANT, 50, EMAIL)
        assert campaign is not None and campaign.stage == CampaignStage.PULLED
        assert campaign.pulled == 6
        assert await ctx.store.get_campaign(TENANT, 50, SMS) is None  # its 13 never came


async def test_event_13_then_1_pulls_once(world: World) -> None:
    world.optimove.load_audience(TENANT, 60, EMAIL, rows("A", 4))
    async with context(world) as ctx:
        await ctx.store.record_notification(TENANT, 13, 60, EMAIL, {})
        await passes(pull_step, ctx, 2)
        await ctx.store.record_notification(TENANT, 1, 60, None, {})
        await ctx.store.record_notification(TENANT, 1, 60, EMAIL, {})
        await passes(pull_step, ctx, 2)
        campaign = await ctx.store.get_campaign(TENANT, 60, EMAIL)
        assert campaign is not None and campaign.pulled == 4
        assert await ctx.store.get_campaign(TENANT, 60, SMS) is None
        assert await ctx.store.pending_notifications(TENANT) == []
        sends = await ctx.store.sends(TENANT, list(SendState))
        assert [s.recipients for s in sends] == [4]


# --- execution: a send the platform refuses for good --------------------------------

async def test_a_send_the_platform_refuses_stops_without_a_loop_of_platform_campaigns(
        world: World) -> None:
    good = world.platform.add_template("Good", ChannelType.EMAIL, "<p>Hi {{FirstName}}</p>")
    missing = good + 1000  # the platform has no such template
    world.optimove.load_audience(TENANT, 70, EMAIL, rows("G", 3, template=good)
                                 + rows("M", 3, template=missing))
    async with context(world) as ctx:
        await ctx.store.record_notification(TENANT, 13, 70, EMAIL, {})
        await passes(pull_step, ctx, 1)
        await passes(execute_pending_sends, ctx, 12)
        sends = {s.template_id: s for s in await ctx.store.sends(TENANT, list(SendState))}
        assert sends[good].state == SendState.READY
        refused = await ctx.store.get_send(sends[missing].id)
        assert refused is not None and refused.platform_campaign_id is None
        stopped = await failure(ctx.store, WorkKind.SEND, refused.id)
        assert stopped is not None and stopped.state == WorkState.STOPPED
        assert f"no template {missing}" in stopped.last_error
        summary = (await ctx.store.campaign_summaries(TENANT))[0]
        shown = {s.id: s.last_error for s in summary.sends}
        assert f"no template {missing}" in (shown[refused.id] or "")
    # Bounded: one platform campaign per try, none of them left behind.
    made = [c for c in world.platform.campaigns() if f"send {refused.id}" in c.name]
    assert made == []
    problems = await _problems(world)
    assert any(f"send {refused.id} stopped" in p for p in problems), problems


# --- following sends to their end ----------------------------------------------------

async def test_a_send_whose_follow_keeps_failing_stops_alone_and_can_be_requeued(
        world: World) -> None:
    from optibridge.pipeline.follow import follow_sends
    good = world.platform.add_template("Good", ChannelType.EMAIL, "<p>Hi {{FirstName}}</p>")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    world.optimove.load_audience(TENANT, 75, EMAIL, rows("F", 2, template=good, when=now)
                                 + rows("P", 2, template=good,
                                        when=now + dt.timedelta(seconds=1)))
    async with context(world) as ctx:
        await ctx.store.record_notification(TENANT, 13, 75, EMAIL, {})
        await passes(pull_step, ctx, 1)
        await passes(execute_pending_sends, ctx, 2)
        healthy, poisoned = sorted(await ctx.store.sends(TENANT, [SendState.READY]),
                                   key=lambda s: s.scheduled_time)
        assert poisoned.platform_campaign_id is not None
        ctx.platform = RefusingPlatform(ctx.platform, poisoned.platform_campaign_id)

        async def finished(send_id: int) -> bool:
            found = await ctx.store.get_send(send_id)
            return found is not None and found.finished_at is not None

        async def shown_error() -> str | None:
            summary = (await ctx.store.campaign_summaries(TENANT))[0]
            return {s.id: s.last_error for s in summary.sends}[poisoned.id]

        for _ in range(200):  # the platform sends the healthy one meanwhile
            await passes(follow_sends, ctx, 1)
            stopping = await failure(ctx.store, WorkKind.FOLLOW, poisoned.id)
            if await finished(healthy.id) and stopping and stopping.state == WorkState.STOPPED:
                break
        assert await finished(healthy.id)  # the others go on
        stopped = await failure(ctx.store, WorkKind.FOLLOW, poisoned.id)
        assert stopped is not None and stopped.state == WorkState.STOPPED
        assert stopped.attempts == MAX_REFUSALS and "is corrupt" in stopped.last_error
        assert "is corrupt" in (await shown_error() or "")
        assert await failure(ctx.store, WorkKind.FOLLOW, healthy.id) is None
        # Fixed on the platform's side; an operator requeues it and it is followed again.
        ctx.platform = ctx.platform.inner
        result = await asyncio.to_thread(world.cli, "work", "requeue", "follow",
                                         str(poisoned.id))
        assert result.exit_code == 0 and "requeued 1 item" in result.output, result.output
        for _ in range(200):
            await passes(follow_sends, ctx, 1)
            if await finished(poisoned.id):
                break
        assert await finished(poisoned.id)
        assert await failure(ctx.store, WorkKind.FOLLOW, poisoned.id) is None
        assert await shown_error() is None


async def _problems(world: World) -> list[str]:
    store = await world.store()
    try:
        return [p.message for p in await store.recent_problems(50)]
    finally:
        await store.db.dispose()


# --- metrics chunks ------------------------------------------------------------------

async def test_a_refused_metrics_chunk_does_not_hold_up_the_other_campaigns(
        world: World) -> None:
    async with context(world) as ctx:
        for campaign_id, channel in ((80, UNKNOWN_TO_OPTIMOVE), (81, EMAIL), (82, EMAIL)):
            campaign, _ = await ctx.store.open_campaign(TENANT, campaign_id, channel)
            await ctx.store.store_audience_page(campaign.id, "email", 0, [
                AudienceEntry(f"X{campaign_id}", 1, SOON, None)], True)  # one Dropped
        for _ in range(MAX_REFUSALS + 1):
            await report_metrics(ctx)
            await asyncio.sleep(0.03)
        reported = world.optimove.metrics(TENANT)
        assert {k[0] for k in reported} == {81, 82}
        stopped = await failure(ctx.store, WorkKind.METRICS, f"80/{UNKNOWN_TO_OPTIMOVE}")
        assert stopped is not None and stopped.state == WorkState.STOPPED
        assert "ChannelID" in stopped.last_error


# --- repeated triggers ---------------------------------------------------------------

def trigger(customer: str, template: int, basket: int = 3) -> bytes:
    return json.dumps({"EventTypeID": 11, "TriggerName": "cart abandoned",
                       "CustomerID": customer, "CampaignID": 90, "ChannelID": TRIGGERED,
                       "TemplateID": template,
                       "Personalization": {"Email": f"{customer}@example.com",
                                           "Basket": basket}}).encode()


async def test_a_repeated_trigger_is_acknowledged_and_not_sent_again(world: World) -> None:
    async with context(world) as ctx:
        clock = [1_000_000.0]
        ctx.store.clock = lambda: clock[0]

        async def record(body: bytes) -> None:
            await ctx.store.record_triggers([to_new_trigger(parse_trigger(body), ctx.tenant,
                                                            TENANT)])

        async def gather() -> None:
            """Gather until nothing waits (a customer twice in one gather waits a turn)."""
            for _ in range(10):
                clock[0] += 1.0  # past the gathering window
                await gather_triggers(ctx)
                if not (await ctx.store.trigger_counts(TENANT))[1]:
                    return

        first = trigger("u1", 7)
        await record(first)
        # Optimove repeats it (keys in another order, other spacing: the same payload).
        await record(json.dumps(json.loads(first), indent=2, sort_keys=True).encode())
        await record(trigger("u2", 7))
        await gather()
        await record(first)  # again, after the first was gathered: still a repeat
        await record(trigger("u1", 7, basket=4))  # another payload: a trigger of its own
        await gather()
        clock[0] += world.config.tenant(TENANT).trigger_repeat_seconds + 10
        await record(first)  # long after: a new trigger
        await gather()
        sends = await ctx.store.trigger_sends(TENANT)
        assert sorted(sends.values()) == [["u1"], ["u1"], ["u1", "u2"]]
        assert await ctx.store.trigger_counts(TENANT) == (6, 0)


# --- the whole service: one poisoned item of each kind beside healthy ones -------------

HEALTHY = {(100, EMAIL), (90, TRIGGERED)}  # the campaigns whose every interaction counts


class Poisoned:
    """What the end-to-end run poisons, and the platform wrapper that refuses reads of the
    platform campaigns in ``refused`` (a cancellation that keeps failing)."""

    refused: set[int] = set()

    @classmethod
    def platform(cls, tenant: Any) -> Any:
        from optibridge.platform.client import PlatformClient
        return RefusingSet(PlatformClient.from_config(tenant.platform), cls.refused)


class RefusingSet(RefusingPlatform):
    def __init__(self, inner: Any, refused: set[int]) -> None:
        super().__init__(inner, -1)
        self.refused_ids = refused

    async def get_campaign(self, campaign_id: int) -> Any:
        self.refused = campaign_id if campaign_id in self.refused_ids else -1
        return await super().get_campaign(campaign_id)


async def _until(condition: Any, what: str, limit: float = 60.0, state: Any = None) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out: {what} {state}"
        await asyncio.sleep(0.2)


STORE_REFUSES = 300  # a campaign whose notification the store cannot take (poisoned)


def refuse_campaign(monkeypatch: pytest.MonkeyPatch, campaign_id: int) -> None:
    """The store refuses to open one campaign, as a database refuses a value (DataError):
    handling that notification fails on every try, for that notification alone."""
    from sqlalchemy.exc import DataError
    opened = Store.open_campaign

    async def open_campaign(self: Store, tenant: str, campaign: int, channel: int,
                            triggered: bool = False) -> Any:
        if campaign == campaign_id:
            raise DataError("INSERT INTO campaign", None, ValueError("value out of range"))
        return await opened(self, tenant, campaign, channel, triggered)

    monkeypatch.setattr(Store, "open_campaign", open_campaign)


async def test_one_poisoned_item_of_each_kind_leaves_the_healthy_ones_reported_once(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Poisoned: a plain notification (the store refuses it), a cancellation (the platform
    refuses it), a pull (Optimove refuses the channel), a send (no such template), a
    metrics chunk and a report batch (Optimove refuses the triggered channel 512). The
    inbox rows' poisons are ``test_poisoned_callbacks``'s."""
    import httpx

    from optibridge.service.app import create_app
    good = world.platform.add_template("Good", ChannelType.EMAIL, "<p>Hi {{FirstName}}</p>")
    missing = good + 1000
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    later = now + dt.timedelta(hours=1)
    healthy = rows("H", 20, template=good, when=now + dt.timedelta(seconds=1))
    healthy += [AudienceRow(f"N{i}", good, now + dt.timedelta(seconds=1), {"Email": None})
                for i in range(2)]  # no address: Dropped
    world.optimove.load_audience(TENANT, 100, EMAIL, healthy
                                 + rows("M", 4, template=missing))  # the refused send
    world.optimove.load_audience(TENANT, 400, EMAIL, rows("G", 2, template=good, when=later))
    world.optimove.load_audience(TENANT, 410, EMAIL, rows("R", 2, template=good, when=later))
    token = world.config.listener_token(TENANT)
    listener = f"{world.service_url}/listener/{TENANT}/{token}"
    triggered = f"{world.service_url}/triggered/{TENANT}/{token}"
    Poisoned.refused.clear()
    server = start_server(create_app(world.config, takeover_wait=False,
                                     platform_factory=Poisoned.platform),
                          port=world.service_port)
    store = await world.store()
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            async def note(event: int, campaign: int, channel: int | None) -> None:
                body = {"EventTypeID": event, "CampaignID": campaign, "ChannelID": channel}
                assert (await client.post(listener, json=body)).status_code == 200

            async def ready(campaign: int) -> bool:
                sends = await store.sends(TENANT, list(SendState))
                return any(s.campaign_id == campaign and s.state == SendState.READY
                           for s in sends)

            await note(13, 400, EMAIL)
            await note(13, 410, EMAIL)
            await _until(lambda: ready(400), "campaign 400 READY")
            await _until(lambda: ready(410), "campaign 410 READY")
            by_campaign = {s.campaign_id: s for s in await store.sends(TENANT, list(SendState))}
            gone = by_campaign[400].platform_campaign_id
            assert gone is not None and by_campaign[410].platform_campaign_id is not None
            world.platform.delete_campaign(gone)  # gone behind our back: 404
            Poisoned.refused.add(by_campaign[410].platform_campaign_id)  # refused: 400
            await note(4, 400, EMAIL)
            await note(4, 410, EMAIL)
            refuse_campaign(monkeypatch, STORE_REFUSES)
            await note(13, STORE_REFUSES, EMAIL)  # fails alone: the notes after it go on
            await note(13, 100, EMAIL)
            await note(1, 100, None)  # 1 pulls nothing: 100's 13 did
            await note(13, 200, SCHEDULED_UNKNOWN)  # Optimove refuses this pull
            for body in ([trigger(f"u{i}", good) for i in range(5)] + [trigger("u0", good)]
                         + [trigger(f"v{i}", good).replace(b'"ChannelID": 511',
                                                           b'"ChannelID": 512')
                            for i in range(3)]):
                assert (await client.post(triggered, content=body)).status_code == 200
            await _open_on_the_refused_channel(client, world, store)

        seen: dict[str, Any] = {}

        async def settled() -> bool:
            seen["failures"] = await store.work_failures(TENANT)
            stopped = [r for r in seen["failures"] if r.state == WorkState.STOPPED]
            seen["sends"] = sends = await store.sends(TENANT, list(SendState))
            healthy_sends = [s for s in sends if s.template_id == good
                             and (s.campaign_id, s.channel_id) in HEALTHY]
            seen["batches"] = batches = await store.batches(
                TENANT, [BatchState.PENDING, BatchState.SENDING, BatchState.IN_DOUBT])
            metrics = world.optimove.metrics(TENANT)
            seen["due"] = [d for d in await _metrics_due(store, world)
                           if (d.campaign_id, d.channel_id) in HEALTHY]
            dead = await store.batches(TENANT, [BatchState.DEAD_LETTER])
            return (len(stopped) == 5 and len(healthy_sends) >= 2 and bool(dead)
                    and all(s.state == SendState.DONE for s in healthy_sends)
                    and await store.inbox_backlog() == 0 and not batches
                    and any(k[0] == 100 for k in metrics) and not seen["due"])

        await _until(settled, "healthy work done, poisoned work stopped", 90, seen)
        await asyncio.sleep(1.0)  # let a last report pass run: nothing more may be reported
        async with httpx.AsyncClient(base_url=world.service_url, timeout=30) as client:
            page = (await client.get("/ui")).text
            scrape = (await client.get("/metrics")).text
            dead_page = (await client.get("/ui/batches", params={
                "tenant": TENANT, "state": "dead_letter"})).text
        label = f'optibridge_report_batches{{state="dead_letter",tenant="{TENANT}"}}'
        dead = re.search(re.escape(label) + r" (\S+)", scrape)
        assert dead is not None and float(dead.group(1)) >= 1, scrape
        assert f'<td>{UNKNOWN_TO_OPTIMOVE}</td>' in dead_page
        refused = next(r for r in seen["failures"] if r.kind == WorkKind.SEND)
        assert f"optibridge work requeue -t {TENANT} send {refused.item}" in page
        assert "no template" in page
        for kind in ("notification", "pull", "send", "metrics", "cancellation"):
            assert (f'optibridge_work_failures{{kind="{kind}",state="stopped",'
                    f'tenant="{TENANT}"}} 1.0') in scrape
    finally:
        await asyncio.to_thread(server.stop)
    try:
        await _check_poisoned(store, world, good, missing)
    finally:
        await store.db.dispose()
    _check_reported_once(world, good)


async def _open_on_the_refused_channel(client: Any, world: World, store: Store) -> None:
    """An 'opened' for v0 of the send on channel 512, which Optimove refuses: its report
    batch is refused for its own content (a dead letter), the healthy ones are not."""
    from optibridge.signing import UrlSigner

    async def the_send() -> bool:
        sends = await store.sends(TENANT, [SendState.READY, SendState.DONE])
        found = [s for s in sends if s.channel_id == UNKNOWN_TO_OPTIMOVE]
        seen["send"] = found[0].id if found else None
        return bool(found)

    seen: dict[str, Any] = {}
    await _until(the_send, "the send on channel 512")
    url = UrlSigner(world.config.server.secret(), world.service_url).callback_url(
        TENANT, seen["send"])
    body = f"event=opened&when={int(time.time())}&email[0]=v0@example.com"
    assert (await client.post(url, content=body.encode())).status_code == 200


async def _metrics_due(store: Store, world: World) -> list[Any]:
    from optibridge.pipeline.reporting import metrics_due
    return await metrics_due(store, TENANT, world.config.tenant(TENANT), float("inf"))


async def _check_poisoned(store: Store, world: World, good: int, missing: int) -> None:
    sends = await store.sends(TENANT, list(SendState))
    by_key = {(s.campaign_id, s.template_id): s for s in sends}
    refused_send = by_key[(100, missing)]
    stopped = {(r.kind, r.item): r for r in await store.work_failures(TENANT)}
    note_id = next(k[1] for k in stopped if k[0] == WorkKind.NOTIFICATION)
    assert {k: r.state for k, r in stopped.items()} == {
        (WorkKind.NOTIFICATION, note_id): WorkState.STOPPED,
        (WorkKind.PULL, f"200/{SCHEDULED_UNKNOWN}"): WorkState.STOPPED,
        (WorkKind.SEND, str(refused_send.id)): WorkState.STOPPED,
        (WorkKind.METRICS, f"90/{UNKNOWN_TO_OPTIMOVE}"): WorkState.STOPPED,
        (WorkKind.CANCELLATION, next(k[1] for k in stopped if k[0] == "cancellation")):
            WorkState.STOPPED}, stopped
    assert all(r.last_error for r in stopped.values())
    assert "no template" in stopped[(WorkKind.SEND, str(refused_send.id))].last_error
    assert "value out of range" in stopped[(WorkKind.NOTIFICATION, note_id)].last_error
    assert await store.get_campaign(TENANT, STORE_REFUSES, EMAIL) is None
    dead = await store.batches(TENANT, [BatchState.DEAD_LETTER])
    assert dead and {b.channel_id for b in dead} == {UNKNOWN_TO_OPTIMOVE}
    for batch in dead:  # the triggered channel Optimove refuses: final, its answer kept
        detail = await store.batch_detail(batch.id)
        assert detail is not None and detail.answer and "ChannelID" in detail.answer
    assert by_key[(400, good)].state == SendState.CANCELLED  # 404: gone is done
    assert by_key[(410, good)].state == SendState.READY  # refused: stopped, not guessed
    assert [c for c in world.platform.campaigns() if f"send {refused_send.id}" in c.name] == []
    assert await store.get_campaign(TENANT, 100, SMS) is None  # event 1 pulled nothing
    assert (await store.trigger_counts(TENANT)) == (9, 0)


def _check_reported_once(world: World, good: int) -> None:
    from optibridge.optimove.models import InteractionEvent
    counts = world.optimove.interaction_counts(TENANT)
    assert set(counts.values()) == {1}, "an interaction was reported twice"
    reported = {(key[0], key[1], key[3], key[6]) for key in counts}
    names = {c.id: c.name for c in world.platform.campaigns()}

    def healthy(platform_id: int) -> tuple[int, int] | None:
        return next((k for k in HEALTHY
                     if f" campaign {k[0]} channel {k[1]} " in names.get(platform_id, "")), None)

    customer = {f"h{i}@example.com": f"H{i}" for i in range(20)}
    customer.update({f"u{i}@example.com": f"u{i}" for i in range(5)})
    events = {"opened": InteractionEvent.OPENED, "clicked": InteractionEvent.CLICKED,
              "bounced": InteractionEvent.BOUNCED}
    truth = world.platform.ground_truth()
    expected = {(*key, events[event], customer[address])
                for platform_id, event, address, _ in truth
                if (key := healthy(platform_id)) is not None and event in events}
    expected |= {(100, EMAIL, InteractionEvent.DROPPED, f"N{i}") for i in range(2)}
    assert {r for r in reported if r[:2] in HEALTHY} == expected
    assert {r[:2] for r in reported} <= HEALTHY  # nothing of the poisoned ones
    submitted = [address for platform_id, event, address, _ in truth
                 if event == "submitted" and healthy(platform_id) is not None]
    assert sorted(submitted) == sorted(customer)  # u0's repeated trigger: one message
    metrics = world.optimove.metrics(TENANT)
    assert metrics[(100, EMAIL, good, 0)] == 20 and metrics[(90, TRIGGERED, good, 0)] == 5
