"""The platform sandbox against seed 003 itself: states and moves, events, the callback body.

The expectations come from the seed's own lines, quoted below, never from the client's
constants; the last test checks that the client reads the seed the same way.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Iterator
from urllib.parse import parse_qsl

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from optibridge.platform import ALLOWED_MOVES
from optibridge.sandbox.platform import EventRates, PlatformSandbox, State, create_app
from optibridge.sandbox.platform import clock as sending_clock
from optibridge.sandbox.platform.contract import Channel, Event, callback_body
from optibridge.sandbox.platform.delivery import CallbackDelivery
from optibridge.sandbox.platform.model import FaultDice, PlatformFaults, Settings
from optibridge.sandbox.platform.validate import ApiError
from optibridge.serving import serving
from tests.platform.conftest import API_KEY

# Seed 003, POST /campaign, parameter `state` (verbatim, with the seed's escaped bar):
SEED_STATES = r"Campaign state. Valid states: DRAFT⮂SCHEDULED⮂READY⇒SENDING⇒(DONE\|ERROR)"
# Seed 003, Events table and its note (verbatim):
SEED_EVENTS = ("submitted", "delivered", "bounced", "opened", "clicked")
SEED_SMS_NOTE = "SMS payloads only generate delivered and bounced events."
# Seed 003, Callback POST parameters: event, when, telephone[] (telephone[0], telephone[1],
# ...), email[] (email[0], email[1], ...); "The event_callback URL may contain a query string
# — those parameters are forwarded unchanged."


def seed_moves() -> set[tuple[str, str]]:
    """The moves the seed's arrows allow: ⮂ both ways, ⇒ one way, (A|B) either."""
    chain = SEED_STATES.split("Valid states: ")[1].replace("\\", "")
    parts = re.split(r"(⮂|⇒)", chain)
    groups = [part.strip("()").split("|") for part in parts[::2]]
    moves: set[tuple[str, str]] = set()
    for left, arrow, right in zip(groups[:-1], parts[1::2], groups[1:], strict=True):
        for a in left:
            for b in right:
                moves.add((a, b))
                if arrow == "⮂":
                    moves.add((b, a))
    return moves


def test_the_seed_is_read_as_written() -> None:
    assert seed_moves() == {("DRAFT", "SCHEDULED"), ("SCHEDULED", "DRAFT"),
                            ("SCHEDULED", "READY"), ("READY", "SCHEDULED"),
                            ("READY", "SENDING"), ("SENDING", "DONE"), ("SENDING", "ERROR")}
    assert {s.value for s in State} == {s for move in seed_moves() for s in move}


def _campaign_in(sandbox: PlatformSandbox, state: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """A campaign with one payload, brought to ``state`` the way the seed allows."""
    list_id = sandbox.create_list([("name", "l")])["id"]
    sandbox.add_contacts(list_id, {"contacts": [{"email": "a@example.com"},
                                                {"email": "b@example.com"}]})
    template = sandbox.add_template("t", "email", "hi")
    form = [("name", "c"), ("domain", "1"), ("list", str(list_id)), ("when", "0")]
    campaign_id: int = sandbox.create_campaign(form)["id"]
    sandbox.attach_payload(campaign_id, [("type", "email"), ("template", str(template))])
    path = {"DRAFT": [], "SCHEDULED": ["SCHEDULED"]}.get(state, ["SCHEDULED", "READY"])
    for step in path:
        sandbox.update_campaign(campaign_id, [("state", step)])
    if state == "ERROR":
        sandbox.delete_template(template)  # the platform cannot send it: ERROR at start
    monkeypatch.setattr(sending_clock, "CHUNK", 1)  # one contact per tick
    ticks = {"SENDING": 1, "DONE": 3, "ERROR": 1}.get(state, 0)
    for _ in range(ticks):
        sandbox.step()
    assert sandbox.campaign(campaign_id).state == state
    return campaign_id


@pytest.mark.parametrize("current", [s.value for s in State])
def test_put_moves_follow_the_seed(current: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every (current, target) pair: allowed by the seed's arrows (or staying put) is applied,
    except a move to a state only the platform reaches; everything else is a 409."""
    for target in (s.value for s in State):
        sandbox = PlatformSandbox(["k"])
        campaign_id = _campaign_in(sandbox, current, monkeypatch)
        by_seed = target == current or (current, target) in seed_moves()
        platform_only = target != current and target in ("SENDING", "DONE", "ERROR")
        if by_seed and not platform_only:
            assert sandbox.update_campaign(campaign_id, [("state", target)])["state"] == target
            continue
        with pytest.raises(ApiError) as refused:
            sandbox.update_campaign(campaign_id, [("state", target)])
        assert refused.value.status == 409, (current, target)
        reason = "only the platform" if by_seed else f"cannot move from {current} to {target}"
        assert reason in refused.value.message
        assert sandbox.campaign(campaign_id).state == current


def test_the_platform_moves_along_the_arrows(monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = PlatformSandbox(["k"])
    campaign_id = _campaign_in(sandbox, "READY", monkeypatch)
    seen = ["READY"]
    for _ in range(5):
        sandbox.step()
        state = sandbox.campaign(campaign_id).state.value
        if state != seen[-1]:
            seen.append(state)
    assert seen == ["READY", "SENDING", "DONE"]
    assert all(move in seed_moves() for move in itertools.pairwise(seen))


def test_callback_body_is_the_seeds_parameters() -> None:
    assert [e.value for e in Event] == list(SEED_EVENTS)
    body = callback_body(Event.OPENED, 1_790_000_000, Channel.EMAIL,
                         ["a+b@example.com", "c@example.com"])
    assert parse_qsl(body.decode(), strict_parsing=True) == [
        ("event", "opened"), ("when", "1790000000"),
        ("email[0]", "a+b@example.com"), ("email[1]", "c@example.com")]
    sms = callback_body(Event.DELIVERED, 5, Channel.SMS, ["+4915000000001"])
    assert parse_qsl(sms.decode()) == [("event", "delivered"), ("when", "5"),
                                       ("telephone[0]", "+4915000000001")]
    assert "delivered and bounced" in SEED_SMS_NOTE
    for event in set(Event) - {Event.DELIVERED, Event.BOUNCED}:
        with pytest.raises(ValueError, match="sms payloads generate no"):
            callback_body(event, 5, Channel.SMS, ["+4915000000001"])


@pytest.fixture
def raw_receiver() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """A callback endpoint keeping each (query string, body) exactly as it came."""
    got: list[tuple[str, bytes]] = []

    async def receive(request: Request) -> Response:
        got.append((request.scope["query_string"].decode("latin-1"), await request.body()))
        return PlainTextResponse("ok")

    with serving(Starlette(routes=[Route("/cb", receive, methods=["POST"])])) as running:
        yield f"{running.url}/cb", got


async def test_callbacks_over_http_carry_the_seeds_parameters(
        raw_receiver: tuple[str, list[tuple[str, bytes]]]) -> None:
    url, got = raw_receiver
    query = "t=a+b%26c&sig=x%2Fy%3D%3D"
    rates = EventRates(delivered=0.5, bounced=0.5, opened=1.0, clicked=1.0)
    sandbox = PlatformSandbox([API_KEY], callback_window=0.05, tick=0.01, rates=rates)
    list_id = sandbox.create_list([("name", "l")])["id"]
    people = [{"email": f"p{i}@example.com", "telephone": f"+49150000000{i:02d}"}
              for i in range(30)]
    sandbox.add_contacts(list_id, {"contacts": people})
    form = [("name", "c"), ("domain", "1"), ("list", str(list_id)), ("when", "0"),
            ("event_callback", f"{url}?{query}")]
    campaign_id = sandbox.create_campaign(form)["id"]
    for kind in ("email", "sms"):
        template = sandbox.add_template(kind, kind, "hi")
        sandbox.attach_payload(campaign_id, [("type", kind), ("template", str(template))])
    sandbox.update_campaign(campaign_id, [("state", "SCHEDULED")])
    sandbox.update_campaign(campaign_id, [("state", "READY")])
    with serving(create_app(sandbox)):
        for _ in range(1000):
            if sandbox.idle():
                break
            await asyncio.sleep(0.01)
    assert sandbox.idle() and got
    seen: set[tuple[str, str]] = set()
    for received_query, body in got:
        assert received_query == query  # forwarded unchanged
        pairs = parse_qsl(body.decode("ascii"), strict_parsing=True)
        (_, event), (when_key, when) = pairs[0], pairs[1]
        assert pairs[0][0] == "event" and when_key == "when" and when.isdigit()
        field = "telephone" if pairs[2][1].startswith("+") else "email"
        assert [k for k, _ in pairs[2:]] == [f"{field}[{i}]" for i in range(len(pairs) - 2)]
        seen.add((field, event))
    assert {e for f, e in seen if f == "email"} == set(SEED_EVENTS)
    assert {e for f, e in seen if f == "telephone"} == {"delivered", "bounced"}


def test_the_client_reads_the_seed_the_same_way() -> None:
    """The client's own table (optibridge.platform) against the seed: a misreading there
    would otherwise pass every test the sandbox runs."""
    client = {(a.value, b.value) for a, targets in ALLOWED_MOVES.items() for b in targets
              if a != b}
    assert client == seed_moves()


def test_callback_lag_fault_draws_each_callbacks_delay() -> None:
    """Not the seed's: a platform running late (fault callback_lag_max), per callback."""
    settings = Settings(max_addresses_per_callback=1)
    late = PlatformFaults(callback_delay=1.0, callback_lag_max=5.0)
    delivery = CallbackDelivery(settings, FaultDice(late, seed=0))
    addresses = [f"p{i}@example.com" for i in range(20)]
    delivery.queue(1, "http://127.0.0.1:9/cb", Event.SUBMITTED, 0, Channel.EMAIL, addresses,
                   100.0)
    delays = [c.due - 100.0 for c in delivery.pending]
    assert len(delays) == 20 and all(1.0 <= d <= 5.0 for d in delays)
    assert len(set(delays)) > 1  # drawn per callback, not one delay for all
    steady = CallbackDelivery(settings, FaultDice(PlatformFaults(callback_delay=1.0), seed=0))
    steady.queue(1, "http://127.0.0.1:9/cb", Event.SUBMITTED, 0, Channel.EMAIL, addresses,
                 100.0)
    assert {c.due for c in steady.pending} == {101.0}
