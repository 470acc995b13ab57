"""The sandbox's sender end to end: campaigns run to DONE over real HTTP and the callbacks a
receiver parses with parse_callback equal the sandbox's ground truth."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

import httpx
import pytest

from optibridge.domain import ChannelType
from optibridge.platform import CampaignState, Contact, PlatformClient
from optibridge.sandbox.platform import EventRates, PlatformFaults, PlatformSandbox, State, render
from optibridge.serving import RunningServer
from tests.platform.platform_receiver import Receiver
from tests.platform.test_sandbox_contract import SEED_EVENTS

NOW = datetime.now(UTC)
Fact = tuple[int, str, str, date]


async def until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def _people(count: int, prefix: str = "p") -> list[Contact]:
    """Emails for most, telephones for some, both for a few: skips happen per payload type."""
    contacts = []
    for i in range(count):
        email = f"{prefix}{i}@example.com" if i % 7 else None
        telephone = f"+4915{i:09d}" if i % 3 == 0 else None
        if email is None and telephone is None:
            telephone = f"+4916{i:09d}"
        contacts.append(Contact(email=email, telephone=telephone, fields={"name": f"N{i}"}))
    return contacts


async def _start(client: PlatformClient, sandbox: PlatformSandbox, contacts: list[Contact],
                 callback: str, types: tuple[ChannelType, ...], when: datetime = NOW
                 ) -> int:
    list_id = await client.create_list("audience")
    result = await client.add_contacts(list_id, contacts)
    assert result.rejected == ()
    campaign = await client.create_campaign("send", list_id, when, callback)
    for kind in types:
        template = sandbox.add_template(f"{kind}", kind, f"Hello {{{{name}}}} ({kind})")
        await client.attach_payload(campaign.id, kind, template)
    await client.move_campaign(campaign.id, CampaignState.SCHEDULED, CampaignState.DRAFT)
    await client.move_campaign(campaign.id, CampaignState.READY, CampaignState.SCHEDULED)
    return campaign.id


def _received(receiver: Receiver, ids: dict[str, int]) -> set[Fact]:
    """What the receiver got, as ground-truth facts; the campaign comes from the query."""
    with receiver.lock:
        return {(ids[b.query["ref"]], b.event.value, address,
                 datetime.fromtimestamp(b.when, UTC).date())
                for b in receiver.batches for address in b.addresses}


async def test_callbacks_equal_ground_truth(client: PlatformClient, sandbox: PlatformSandbox,
                                            receiver: Receiver) -> None:
    both = await _start(client, sandbox, _people(3_000),
                        f"{receiver.url}?ref=both&tenant=acme%20corp",
                        (ChannelType.EMAIL, ChannelType.SMS))
    sms = await _start(client, sandbox, _people(1_000, "s"), f"{receiver.url}?ref=sms",
                       (ChannelType.SMS,))
    await until(sandbox.idle)
    assert sandbox.campaign(both).state is State.DONE
    assert sandbox.campaign(sms).state is State.DONE
    truth = sandbox.ground_truth()
    assert _received(receiver, {"both": both, "sms": sms}) == truth
    assert receiver.errors == []
    assert {b.query["tenant"] for b in receiver.batches if b.query["ref"] == "both"} == {
        "acme corp"}
    events = {(cid, event) for cid, event, _, _ in truth}
    assert events == {(both, e) for e in SEED_EVENTS} | {
        (sms, "delivered"), (sms, "bounced")}
    # every email contact was submitted; no one without an email got an email event
    emails = {c.email for c in _people(3_000) if c.email}
    assert {a for cid, e, a, _ in truth if cid == both and e == "submitted"} == emails
    phones = {c.telephone for c in _people(1_000, "s") if c.telephone}
    assert {a for cid, _, a, _ in truth if cid == sms} == phones


async def test_faults_duplicates_reorder_and_retries_keep_the_same_set(
        client: PlatformClient, sandbox: PlatformSandbox, receiver: Receiver) -> None:
    # Every answered callback is sent again: under load the sandbox makes few, larger
    # callbacks, and at a rate of one half none was duplicated in one CI run.
    sandbox.set_faults(PlatformFaults(duplicate_callback_rate=1.0, reorder_callbacks=True,
                                      callback_error_rate=0.2, seed=11))
    receiver.fail_first = 3
    campaign = await _start(client, sandbox, _people(4_000), f"{receiver.url}?ref=f",
                            (ChannelType.EMAIL,))
    await until(sandbox.idle)
    assert _received(receiver, {"f": campaign}) == sandbox.ground_truth()
    attempts = sandbox.callbacks_sent()
    assert any(a.duplicate for a in attempts)
    assert any(a.status == 503 for a in attempts)  # injected and the receiver's own
    assert any(a.attempt > 1 and a.status == 200 for a in attempts)
    with receiver.lock:
        delivered = len(receiver.batches)
    assert delivered == sum(1 for a in attempts if a.status == 200)


async def test_large_windows_are_split_and_failures_end_in_error(
        client: PlatformClient, receiver: Receiver, platform_server: RunningServer,
        sandbox: PlatformSandbox) -> None:
    sandbox.max_addresses_per_callback = 500
    sandbox.set_faults(PlatformFaults(fail_campaigns_after=0.5))
    people = [Contact(email=f"x{i}@example.com") for i in range(2_000)]
    campaign = await _start(client, sandbox, people, f"{receiver.url}?ref=e",
                            (ChannelType.EMAIL,))
    await until(sandbox.idle)
    assert sandbox.campaign(campaign).state is State.ERROR
    truth = sandbox.ground_truth()
    submitted = {a for _, e, a, _ in truth if e == "submitted"}
    assert submitted == {f"x{i}@example.com" for i in range(1_000)}  # the rest: no events
    assert max(a.addresses for a in sandbox.callbacks_sent()) == 500
    assert _received(receiver, {"e": campaign}) == truth


async def test_withheld_contacts_get_no_events_but_campaign_is_done(
        client: PlatformClient, receiver: Receiver, sandbox: PlatformSandbox) -> None:
    sandbox.rates = EventRates(delivered=1.0, bounced=0.0, opened=0.0, clicked=0.0)
    sandbox.set_faults(PlatformFaults(withhold_submitted_rate=0.25))
    people = [Contact(email=f"w{i}@example.com") for i in range(2_000)]
    campaign = await _start(client, sandbox, people, f"{receiver.url}?ref=w",
                            (ChannelType.EMAIL,))
    await until(sandbox.idle)
    assert sandbox.campaign(campaign).state is State.DONE
    truth = sandbox.ground_truth()
    submitted = {a for _, e, a, _ in truth if e == "submitted"}
    assert 1_300 < len(submitted) < 1_700  # about three quarters
    assert {a for _, e, a, _ in truth if e == "delivered"} == submitted
    assert {e for _, e, _, _ in truth} == {"submitted", "delivered"}


async def test_future_campaign_waits_and_rendering_uses_fields(
        client: PlatformClient, receiver: Receiver, sandbox: PlatformSandbox) -> None:
    people = [Contact(email="a@example.com", fields={"name": "Ann"}),
              Contact(email="b@example.com", fields={})]
    campaign = await _start(client, sandbox, people, f"{receiver.url}?ref=r",
                            (ChannelType.EMAIL,), when=datetime.now(UTC) + timedelta(seconds=2))
    await asyncio.sleep(0.3)
    assert sandbox.campaign(campaign).state is State.READY and not sandbox.idle()
    await until(sandbox.idle)
    assert sandbox.rendered(campaign) == {"a@example.com": "Hello Ann (email)",
                                          "b@example.com": "Hello {{name}} (email)"}
    assert render("{{ a }}-{{b}}-{{c}}", {"a": "1", "b": "2"}) == "1-2-{{c}}"


async def test_deleted_template_ends_campaign_in_error(
        client: PlatformClient, receiver: Receiver, sandbox: PlatformSandbox) -> None:
    list_id = await client.create_list("l")
    await client.add_contacts(list_id, [Contact(email="a@example.com")])
    created = await client.create_campaign("c", list_id, NOW, receiver.url)
    template = sandbox.add_template("gone", ChannelType.EMAIL, "x")
    await client.attach_payload(created.id, ChannelType.EMAIL, template)
    await client.move_campaign(created.id, CampaignState.SCHEDULED)
    sandbox.delete_template(template)
    await client.move_campaign(created.id, CampaignState.READY)
    await until(sandbox.idle)
    assert sandbox.campaign(created.id).state is State.ERROR
    assert sandbox.ground_truth() == set()


async def test_admin_api(platform_server: RunningServer, sandbox: PlatformSandbox,
                         client: PlatformClient) -> None:
    async with httpx.AsyncClient(base_url=platform_server.url) as admin:
        created = await admin.post("/sandbox/templates",
                                   json={"name": "n", "type": "sms", "body": "b"})
        assert created.status_code == 201
        assert (await client.get_template(created.json()["id"])).body == "b"
        bad = await admin.put("/sandbox/faults", json={"api_eror_rate": 1})
        assert bad.status_code == 400 and "api_eror_rate" in bad.json()["error"]
        put = await admin.put("/sandbox/faults", json={"api_error_rate": 1.0})
        assert put.json()["faults"]["api_error_rate"] == 1.0
        assert sandbox.faults == PlatformFaults(api_error_rate=1.0)
        await admin.put("/sandbox/faults", json=None)
        assert sandbox.faults is None
        list_id = await client.create_list("l")
        await client.create_campaign("c", list_id, NOW, "http://h/cb")
        listed = (await admin.get("/sandbox/campaigns")).json()
        assert [c["name"] for c in listed["items"]] == ["c"] and listed["idle"] is True
        truth = (await admin.get("/sandbox/ground-truth")).json()
        assert truth == {"items": [], "total": 0}
        anonymous = await admin.get("/domain")
        assert anonymous.status_code == 401 and "error" in anonymous.json()
        lists = (await admin.get("/sandbox/lists")).json()
        assert lists == {"items": [{"id": list_id, "name": "l"}], "total": 1}
        lost = await admin.put("/sandbox/faults", json={"lost_answer_rate": 1.0,
                                                        "lost_answers_of": ["list"]})
        assert lost.json()["faults"]["lost_answers_of"] == ["list"]
        wrong = await admin.put("/sandbox/faults", json={"lost_answers_of": ["send"]})
        assert wrong.status_code == 400 and "lost_answers_of" in wrong.json()["error"]


def test_scattered_ids_say_nothing_of_the_order_objects_were_made_in() -> None:
    counted = PlatformSandbox(["k"], seed=2)
    assert [counted.add_template(f"t{i}", "sms", "b") for i in range(3)] == [1, 2, 3]
    sandbox = PlatformSandbox(["k"], seed=2, scattered_ids=True)
    ids = [sandbox.add_template(f"t{i}", "sms", "b") for i in range(30)]
    assert len(set(ids)) == 30 and ids != sorted(ids)


@pytest.mark.slow
def test_sender_scales_to_a_large_list() -> None:
    """300,000 contacts through the event model and windows, without HTTP: seconds, not
    minutes (the sandbox must carry the project's million-contact runs)."""
    sandbox = PlatformSandbox(["k"], callback_window=0.0)
    list_id = sandbox.create_list([("name", "big")])["id"]
    for start in range(0, 300_000, 10_000):
        rows = [{"email": f"u{i}@example.com"} for i in range(start, start + 10_000)]
        sandbox.add_contacts(list_id, {"contacts": rows})
    template = sandbox.add_template("t", ChannelType.EMAIL, "x")
    form = {"name": "c", "domain": "1", "list": str(list_id), "when": "0"}
    campaign_id = sandbox.create_campaign(list(form.items()))["id"]
    sandbox.attach_payload(campaign_id, [("type", "email"), ("template", str(template))])
    sandbox.update_campaign(campaign_id, [("state", "SCHEDULED")])
    sandbox.update_campaign(campaign_id, [("state", "READY")])
    started = time.process_time()
    while sandbox.campaign(campaign_id).state is not State.DONE:
        sandbox.step()
    sandbox.step()  # close the last windows
    cpu = time.process_time() - started
    truth = sandbox.ground_truth()
    assert sum(1 for _, e, _, _ in truth if e == "submitted") == 300_000
    assert cpu < 10, f"{cpu:.1f} s of CPU for 300,000 contacts"
    assert sandbox.idle()  # no event_callback: nothing to deliver


def test_event_callback_query_survives_exactly() -> None:
    query = urlencode({"t": "a b&c", "sig": "x/y=="})
    assert httpx.URL(f"http://h/cb?{query}").query.decode() == query
