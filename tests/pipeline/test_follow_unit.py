"""Following a platform campaign, step by step, against a scripted platform."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import replace
from typing import Any

from optibridge.domain import Event, InboxItem, SendRecord, SendState
from optibridge.pipeline.follow import follow_send
from optibridge.platform.api import CampaignState, PlatformCampaign
from optibridge.store import Store, open_store


class ScriptedPlatform:
    """Answers get_campaign with the next state of a script."""

    def __init__(self, *states: CampaignState) -> None:
        self.states = list(states)

    async def get_campaign(self, campaign_id: int) -> PlatformCampaign:
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return PlatformCampaign(campaign_id, "n", state, 0, 1, 1)


class Ctx:
    """The slice of TenantContext that follow_send uses."""

    def __init__(self, store: Store, platform: ScriptedPlatform) -> None:
        from optibridge.config import TimingConfig

        self.name, self.store, self.platform = "t", store, platform
        self.timing = TimingConfig(follow_min=1e-6, follow_max=1e-6, callback_margin=5.0)
        self.tenant = type("T", (), {"callback_window_seconds": 10.0})()
        self.started_at = 0.0
        self.flagged_sends: set[int] = set()
        self.quiet_until: dict[int, float] = {}
        self.log = _Log()


class _Log:
    def __init__(self) -> None:
        self.events: list[str] = []

    def info(self, event: str, **_: Any) -> None:
        self.events.append(event)

    warning = info


async def ready_send(store: Store) -> SendRecord:
    from optibridge.domain import AudienceEntry

    campaign, _ = await store.open_campaign("t", 1, 504)
    when = dt.datetime(2026, 1, 1)
    entries = [AudienceEntry(f"C{i}", 7, when, f"c{i}@example.com") for i in range(3)]
    await store.store_audience_page(campaign.id, "email", 0, entries, True)
    send = (await store.sends("t", list(SendState)))[0]
    await store.update_send(send.id, state=SendState.READY, platform_campaign_id=99,
                            ready_at=100.0, platform_state="READY")
    return await current(store, send.id)


async def current(store: Store, send_id: int) -> SendRecord:
    """The send as the store has it now."""
    fresh = await store.get_send(send_id)
    assert fresh is not None
    return fresh


async def test_done_waits_for_quiet_callbacks_then_drops_the_unsent(tmp_path: Any) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'f.db'}")
    now = [1_800_000_000.0]  # after the send time
    store.clock = lambda: now[0]
    ctx: Any = Ctx(store, ScriptedPlatform(CampaignState.SENDING, CampaignState.DONE))
    send = await ready_send(store)
    assert not await follow_send(ctx, send)  # SENDING: recorded, nothing else
    now[0] += 1
    send = await current(store, send.id)
    assert send.platform_state == "SENDING"
    assert not await follow_send(ctx, send)  # DONE seen: the callback window starts
    send = await current(store, send.id)
    assert send.finished_at == 1_800_000_001.0
    now[0] += 14  # window 10 + margin 5 not over yet
    assert not await follow_send(ctx, send)
    now[0] += 2  # over, but no callback at all came: the platform may just be late
    assert not await follow_send(ctx, send)
    now[0] += 44  # 60 s of quiet (follow.NO_CALLBACK_MIN)
    assert await follow_send(ctx, send)
    final = await store.get_send(send.id)
    assert final is not None and final.state == SendState.DONE
    assert (await store.event_counts("t"))["dropped"] == (3, 0)  # no submitted event came
    await store.db.dispose()


async def test_a_finished_send_is_read_again_only_when_its_quiet_period_can_be_over(
        tmp_path: Any) -> None:
    # Every pass (each second) read each finished send's last callback and the tenant's lag
    # over the last hour of callbacks, though the quiet period found could not be over.
    store = await open_store(f"sqlite:///{tmp_path / 'f.db'}")
    now = [1_800_000_000.0]
    store.clock = lambda: now[0]
    ctx: Any = Ctx(store, ScriptedPlatform(CampaignState.DONE))
    send = await ready_send(store)
    await store.record_callbacks([InboxItem(send.id, Event.SUBMITTED, int(now[0]),
                                            ("c1@example.com",))])  # no lag
    reads = Counter[str]()

    def counted(name: str) -> Any:
        read = getattr(store, name)

        def counted_read(*args: Any) -> Any:
            reads[name] += 1
            return read(*args)
        return counted_read

    for name in ("last_callback_at", "callback_lag"):
        setattr(store, name, counted(name))
    assert not await follow_send(ctx, send)  # DONE seen: the quiet period starts
    send = await current(store, send.id)
    for _ in range(14):  # window 10 + margin 5 from the last callback: not over
        assert not await follow_send(ctx, send)
        now[0] += 1
    assert reads == {"last_callback_at": 1, "callback_lag": 1}
    now[0] += 1
    assert await follow_send(ctx, send)
    assert reads == {"last_callback_at": 2, "callback_lag": 2}
    await store.db.dispose()


async def test_a_campaign_stuck_sending_is_flagged_once(tmp_path: Any) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'f.db'}")
    now = [10_000_000_000.0]
    store.clock = lambda: now[0]
    ctx: Any = Ctx(store, ScriptedPlatform(CampaignState.SENDING))
    send = replace(await ready_send(store), ready_at=now[0] - 7200)
    for _ in range(3):
        now[0] += 100
        await follow_send(ctx, replace(send, checked_at=None))
    problems = await store.recent_problems()
    assert len(problems) == 1 and "SENDING for" in problems[0].message
    assert ctx.log.events.count("follow.stuck_sending") == 3
    await store.db.dispose()
