"""Triggered campaigns (EventTypeID 11): intake, gathering into few platform campaigns,
execution and reporting like scheduled sends."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import date
from typing import Any

import httpx
import pytest

from optibridge.domain import ChannelType, Event, SendState
from optibridge.optimove.inbound import parse_trigger
from optibridge.optimove.models import REPORTED_AS, InteractionEvent, Metric
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.nudges import Loop
from optibridge.pipeline.progress import progress
from optibridge.pipeline.triggered import TriggerIntake, gather_step, to_new_trigger
from optibridge.pipeline.worker import STEPS, Step, run_loop
from optibridge.refusals import Refused
from optibridge.sandbox.platform import EventRates
from optibridge.service.app import create_app
from optibridge.serving import RunningServer, start_server
from tests.worlds import TENANT, TRIGGERED, World

CAMPAIGN = 9001


def trigger(customer: str, template: int, address: str | None, first: str = "Ada",
            channel: int = TRIGGERED) -> dict[str, Any]:
    personalization: dict[str, Any] = {"FirstName": first, "Basket": 3}
    if address is not None:
        personalization["Email"] = address
    return {"EventTypeID": 11, "TriggerName": "cart abandoned", "CustomerID": customer,
            "CampaignID": CAMPAIGN, "ActionID": 55, "ChannelID": channel,
            "TemplateID": template, "Personalization": personalization}


def start_service(world: World) -> RunningServer:
    return start_server(create_app(world.config, takeover_wait=False), port=world.service_port)


def trigger_url(world: World, token: str | None = None) -> str:
    return (f"{world.service_url}/triggered/{TENANT}/"
            f"{token or world.config.listener_token(TENANT)}")


async def post_paced(url: str, bodies: list[dict[str, Any]], per_second: float
                     ) -> tuple[list[int], float]:
    """POST every body, the i-th at i/per_second seconds; statuses and the time taken."""
    gate = asyncio.Semaphore(100)
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        start = time.monotonic()

        async def one(index: int, body: dict[str, Any]) -> int:
            await asyncio.sleep(max(0.0, start + index / per_second - time.monotonic()))
            async with gate:
                return (await client.post(url, json=body)).status_code

        statuses = await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies)))
        return list(statuses), time.monotonic() - start


async def wait_settled(world: World, limit: float = 40.0) -> None:
    store = await world.store()
    try:
        deadline = time.monotonic() + limit
        while True:
            state = await progress(store, TENANT, world.config.tenant(TENANT))
            _, pending = await store.trigger_counts(TENANT)
            if state.settled and state.sends and not pending and world.platform.idle():
                return
            assert time.monotonic() < deadline, f"not settled: {state}, pending {pending}"
            await asyncio.sleep(0.2)
    finally:
        await store.db.dispose()


def burst(templates: list[int]) -> list[dict[str, Any]]:
    """2,001 triggers over two templates; 4 without an address; T00001 twice (the second
    of another trigger, so not a repeat); T00002's trigger repeated as it was."""
    bodies = [trigger(f"T{i:05d}", templates[i % 2],
                      None if i % 500 == 3 else f"t{i}@example.com", first=f"N{i}")
              for i in range(1_999)]
    again = trigger("T00001", templates[1], "t1@example.com", first="N1")
    bodies.append({**again, "TriggerName": "cart abandoned again"})
    bodies.append(dict(bodies[2]))  # Optimove sent it twice: one message
    return bodies


async def accept_paced(world: World, bodies: list[dict[str, Any]], per_second: float
                       ) -> float:
    """Feed every body to the endpoint's intake (parse, check, group-committed record), the
    i-th at i/per_second s, while a gather loop runs as the worker's does; the time taken."""
    async with world.context() as ctx:
        intake = TriggerIntake.for_contexts(ctx.store, {TENANT: ctx})
        done = asyncio.Event()

        async def gather_loop() -> None:
            while not done.is_set() or (await ctx.store.trigger_counts(TENANT))[1]:
                if not await gather_step(ctx):
                    await asyncio.sleep(0.01)

        loop = asyncio.create_task(gather_loop())
        start = time.monotonic()

        async def one(index: int, body: dict[str, Any]) -> int:
            await asyncio.sleep(max(0.0, start + index / per_second - time.monotonic()))
            return await intake.accept(ctx, json.dumps(body).encode())

        ids = await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies)))
        elapsed = time.monotonic() - start
        done.set()
        await loop
    assert len(set(ids)) == len(bodies)
    return elapsed


async def test_a_burst_becomes_a_handful_of_platform_campaigns(world: World) -> None:
    templates = [world.platform.add_template(f"Cart {n}", ChannelType.EMAIL,
                                             "<p>Hi {{FirstName}}</p>") for n in "AB"]
    bodies = burst(templates)
    elapsed = await accept_paced(world, bodies, per_second=2_000)
    server = start_service(world)  # executes, follows and reports the gathered sends
    try:
        await wait_settled(world)
    finally:
        server.stop()
    store = await world.store()
    try:
        per_send = await store.trigger_sends(TENANT)
        dropped = (await store.event_counts(TENANT, campaign_id=CAMPAIGN))["dropped"][0]
    finally:
        await store.db.dispose()
    window = world.config.tenant(TENANT).trigger_window_seconds
    # each template closes a window at most every `window` s; T00001's repeat waits one more
    assert 2 <= len(per_send) <= 2 * (elapsed / window + 2) + 1
    assert len(per_send) < len(bodies) / 20
    assert sorted(c for cs in per_send.values() for c in cs) == sorted(
        b["CustomerID"] for b in bodies[:-1])
    assert [len([s for s, cs in per_send.items() if "T00001" in cs])] == [2]
    assert [len([s for s, cs in per_send.items() if "T00002" in cs])] == [1]
    assert dropped == sum(1 for b in bodies if "Email" not in b["Personalization"])
    _check_platform(world, bodies, len(per_send))
    _check_reported(world, bodies, templates, dropped)


async def test_a_customer_triggered_twice_has_each_message_reported(world: World) -> None:
    # Every message delivered and opened: both of C1's messages are opened on one day.
    world.platform.rates = EventRates(delivered=1.0, bounced=0.0, opened=1.0, clicked=0.0)
    template = world.platform.add_template("Cart", ChannelType.EMAIL, "<p>Hi</p>")
    bodies = [trigger("C1", template, "c1@example.com"), trigger("C2", template,
                                                                  "c2@example.com")]
    bodies.append({**bodies[0], "TriggerName": "cart abandoned again"})
    await accept_paced(world, bodies, per_second=100)
    server = start_service(world)
    try:
        await wait_settled(world)
    finally:
        server.stop()
    _check_reported(world, bodies, [template], dropped=0)
    opened: Counter[str] = Counter()
    for (event, _, customer), n in _reported_per_customer(
            world.optimove.interaction_counts(TENANT)).items():
        if event == InteractionEvent.OPENED:
            opened[customer] += n
    assert opened == {"C1": 2, "C2": 1}  # two messages opened, not one reported twice


def _check_platform(world: World, bodies: list[dict[str, Any]], sends: int) -> None:
    campaigns = [c for c in world.platform.campaigns() if f"campaign {CAMPAIGN} " in c.name]
    assert len(campaigns) == sends
    assert all(c.state == "DONE" for c in campaigns)
    contacts = [contact for c in campaigns for contact in world.platform.contacts(c.list_id)]
    want = {b["Personalization"]["Email"]: b["Personalization"]["FirstName"]
            for b in bodies if "Email" in b["Personalization"]}
    assert {c.email: c.fields["FirstName"] for c in contacts} == want
    assert all(c.fields["Basket"] == "3" for c in contacts)


def _check_reported(world: World, bodies: list[dict[str, Any]], templates: list[int],
                    dropped: int) -> None:
    truth = world.platform.ground_truth()
    metrics = world.optimove.metrics(TENANT)
    sent = sum(v for (c, ch, t, m), v in metrics.items()
               if c == CAMPAIGN and ch == TRIGGERED and m == Metric.SENT)
    assert sent == sum(1 for _, event, _, _ in truth if event == "submitted")
    counts = world.optimove.interaction_counts(TENANT)
    assert {key[2] for key in counts} <= set(templates)
    by_event = Counter(key[3] for key in counts if key[0] == CAMPAIGN)
    assert by_event[InteractionEvent.DROPPED] == dropped
    assert {v for k, v in counts.items() if k[3] == InteractionEvent.DROPPED} <= {1}
    # Each message's open, click and bounce once: T00001 got two messages of the campaign
    # (two sends, same template), so both opened on one day is rightly reported twice.
    assert _reported_per_customer(counts) == _sent_per_customer(bodies, truth)


def _reported_per_customer(counts: Counter[tuple[int, int, int, int, int, date, str]]
                           ) -> Counter[tuple[int, date, str]]:
    reported: Counter[tuple[int, date, str]] = Counter()
    for (campaign, _, _, event, _, day, customer), times in counts.items():
        if campaign == CAMPAIGN and event != InteractionEvent.DROPPED:
            reported[(event, day, customer)] += times
    return reported


def _sent_per_customer(bodies: list[dict[str, Any]], truth: set[tuple[int, str, str, date]]
                       ) -> Counter[tuple[int, date, str]]:
    """What the sender produced, counted once per platform campaign (one send each)."""
    customer_of = {b["Personalization"]["Email"]: b["CustomerID"]
                   for b in bodies if "Email" in b["Personalization"]}
    return Counter((int(REPORTED_AS[Event(event)]), day, customer_of[address])
                   for _, event, address, day in truth if Event(event) in REPORTED_AS)


async def test_bad_triggers_are_refused_and_nothing_is_recorded(world: World) -> None:
    template = world.platform.add_template("Cart", ChannelType.EMAIL, "<p>Hi</p>")
    sms = world.platform.add_template("Text", ChannelType.SMS, "Hi")
    good = trigger("C1", template, "c1@example.com")
    cases: list[tuple[Any, int, str]] = [
        ({**good, "ChannelID": 504}, 422, "unknown channel"),
        ({**good, "TemplateID": 999_999}, 422, "unknown template"),
        ({**good, "TemplateID": sms}, 422, "unknown template"),
        ({**good, "Personalization": {"FirstName": {"nested": 1}}}, 422, "not a scalar"),
        ({k: v for k, v in good.items() if k != "CustomerID"}, 400, "no customer"),
        ({k: v for k, v in good.items() if k != "CampaignID"}, 400, "no campaign"),
        ({k: v for k, v in good.items() if k != "TemplateID"}, 400, "no template"),
        ({**good, "CampaignID": "abc"}, 400, "CampaignID must be an integer"),
        ([good], 400, "JSON object"),
    ]
    server = start_service(world)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            for body, status, words in cases:
                answer = await client.post(trigger_url(world), content=json.dumps(body))
                assert (answer.status_code, words in answer.json()["error"]) == (status, True)
            wrong = await client.post(trigger_url(world, "0" * 32), json=good)
            assert wrong.status_code == 404
            store = await world.store()
            try:
                assert await store.trigger_counts(TENANT) == (0, 0)
                snake = {"user": {"user_id": "S1", "is_visitor": False},
                         "campaign": {"id": CAMPAIGN, "action": {"id": 7, "channels": [
                             {"id": TRIGGERED, "templates": [{"id": template}]}]}},
                         "personalization": {"Email": "S1@Example.com"}}
                accepted = await client.post(trigger_url(world), json=snake)
                assert accepted.status_code == 200
                assert (await store.trigger_counts(TENANT))[0] == 1
                bodies = [trigger(f"H{i}", template, f"h{i}@example.com") for i in range(100)]
                statuses, _ = await post_paced(trigger_url(world), bodies, per_second=500)
                assert Counter(statuses) == {200: 100}
                await wait_settled(world)
                gathered = await store.trigger_sends(TENANT)
                assert sorted(c for cs in gathered.values() for c in cs) == sorted(
                    ["S1", *(b["CustomerID"] for b in bodies)])
            finally:
                await store.db.dispose()
    finally:
        server.stop()


def test_parser_reads_both_shapes_and_keeps_the_raw_payload(world: World) -> None:
    tenant = world.config.tenant(TENANT)
    pascal = json.dumps({"customer_id": "P1", "campaignId": 5, "channelid": TRIGGERED,
                         "TemplateID": "12", "PersonalizationTags": [
                             {"Key": "Email", "Value": " P1@Example.COM "},
                             {"Key": "FirstName", "Value": None}]}).encode()
    parsed = to_new_trigger(parse_trigger(pascal), tenant, TENANT)
    assert (parsed.customer_id, parsed.campaign_id, parsed.channel_id, parsed.template_id,
            parsed.address) == ("P1", 5, TRIGGERED, 12, "p1@example.com")
    assert parsed.fields["FirstName"] == "friend"  # the channel's default for an empty tag
    assert json.loads(parsed.payload) == json.loads(pascal)
    snake = json.dumps({"user": {"user_id": "U9"}, "campaign": {
        "id": 8, "action": {"id": 3, "channels": [
            {"id": 999, "templates": [{"id": 1}]},
            {"id": TRIGGERED, "templates": [{"id": 4}, {"id": 5}]}]}}}).encode()
    chosen = to_new_trigger(parse_trigger(snake), tenant, TENANT)
    assert (chosen.customer_id, chosen.campaign_id, chosen.channel_id, chosen.template_id,
            chosen.action_id, chosen.address) == ("U9", 8, TRIGGERED, 4, 3, None)
    with pytest.raises(Refused, match="not a scalar"):
        parse_trigger(b'{"CustomerID":"a","CampaignID":1,"Personalization":{"x":[1]}}')


async def test_a_trigger_wakes_the_gathering_and_then_the_execution_loop_and_no_other(
        world: World) -> None:
    # Each trigger used to wake every idle loop of the tenant: at 50 triggers a second,
    # follow's, report's and the other loops each ran 50 passes a second that found nothing.
    template = world.platform.add_template("Cart", ChannelType.EMAIL, "<p>Hi</p>")
    passes: Counter[Loop] = Counter()

    def counted(loop: Loop, step: Step) -> Step:
        async def one_pass(ctx: TenantContext) -> int:
            passes[loop] += 1
            return await step(ctx)
        return one_pass

    async def nothing(ctx: TenantContext) -> int:
        return 0

    async with world.context() as ctx:
        ctx.timing = ctx.timing.model_copy(update={"idle": 60.0})  # no pause ends by itself
        intake = TriggerIntake.for_contexts(ctx.store, {TENANT: ctx})
        steps = {Loop.TRIGGERED: STEPS[Loop.TRIGGERED], Loop.EXECUTE: STEPS[Loop.EXECUTE],
                 Loop.FOLLOW: nothing, Loop.REPORT: nothing, Loop.PULL: nothing}
        loops = [asyncio.create_task(run_loop(ctx, loop, counted(loop, step)))
                 for loop, step in steps.items()]
        try:
            await asyncio.sleep(0.3)  # every loop has made its first pass and is paused
            for i in range(10):
                body = trigger(f"W{i}", template, f"w{i}@example.com")
                await intake.accept(ctx, json.dumps(body).encode())
                await asyncio.sleep(0.02)
            for _ in range(100):
                if await ctx.store.sends(TENANT, [SendState.READY]):
                    break
                await asyncio.sleep(0.05)
            ready = await ctx.store.sends(TENANT, [SendState.READY])
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
    assert [send.recipients for send in ready] == [10]  # gathered, then executed, at once
    assert passes[Loop.FOLLOW] == passes[Loop.REPORT] == passes[Loop.PULL] == 1
