"""EventTypeID 4 cancels what has not been sent: READY platform campaigns are withdrawn."""

from __future__ import annotations

import asyncio
import time

from optibridge.demo import EMAIL_CAMPAIGN, EMAIL_CHANNEL, SMS_CHANNEL, TENANT, Rehearsal
from optibridge.domain import SendState
from optibridge.store import Database, Store


async def sends_by_channel(url: str) -> dict[int, list[SendState]]:
    store = Store(Database(url))
    try:
        sends = await store.sends(TENANT, list(SendState))
        found: dict[int, list[SendState]] = {}
        for send in sends:
            found.setdefault(send.channel_id, []).append(send.state)
        return found
    finally:
        await store.db.dispose()


def wait_for(condition: str, check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting until {condition}")


def test_cancellation_withdraws_ready_sends_and_leaves_others(rehearsal: Rehearsal) -> None:
    rehearsal.send_delay = 3600.0  # the sends wait an hour: nothing goes out meanwhile
    rehearsal.start_sandboxes()
    rehearsal.register_and_load()
    rehearsal.start_service()
    rehearsal.fire()
    url = rehearsal.config.server.database_url

    def all_ready() -> bool:
        states = asyncio.run(sends_by_channel(url))
        return sum(len(v) for v in states.values()) == 6 and all(
            s == SendState.READY for v in states.values() for s in v)

    wait_for("all six sends are READY", all_ready)
    # Twice: a repeated cancellation changes nothing more.
    for _ in range(2):
        assert rehearsal.optimove.notify(TENANT, 4, campaign_id=EMAIL_CAMPAIGN,
                                         channel_id=EMAIL_CHANNEL) == [200]

    def email_cancelled() -> bool:
        states = asyncio.run(sends_by_channel(url))
        return set(states[EMAIL_CHANNEL]) == {SendState.CANCELLED}

    wait_for("the email sends are cancelled", email_cancelled)
    states = asyncio.run(sends_by_channel(url))
    assert set(states[SMS_CHANNEL]) == {SendState.READY}
    live = [c for c in rehearsal.platform.campaigns() if c.state == "READY"]
    assert len(live) == 2  # only the SMS sends are still going to be sent
    assert rehearsal.platform.ground_truth() == set()
