"""The sending clock: starts READY campaigns at their time, runs the sender a chunk per tick,
and closes each callback window (platform-api.md: "time-aggregated") into callbacks.

Not thread-safe by itself: ``PlatformSandbox`` holds its lock around every call.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from optibridge.sandbox.platform.contract import Channel, Event, State
from optibridge.sandbox.platform.delivery import CallbackDelivery
from optibridge.sandbox.platform.model import FaultDice, PlatformFaults, SandboxCampaign, Settings
from optibridge.sandbox.platform.resources import Resources
from optibridge.sandbox.platform.sender import Run

CHUNK = 50_000  # contacts handled per campaign per tick: keeps the event loop responsive


@dataclass
class _Window:
    """Events of one (campaign, event, channel) waiting to go out as one callback."""

    when: int
    opened: float  # monotonic
    addresses: list[str]


class SendingClock:
    """The runs of started campaigns, the open windows and the ground truth they produced."""

    def __init__(self, resources: Resources, delivery: CallbackDelivery, settings: Settings,
                 dice: FaultDice) -> None:
        self.resources = resources
        self.delivery = delivery
        self.settings = settings
        self.dice = dice
        self.runs: dict[int, Run] = {}
        self._windows: dict[tuple[int, Event, Channel], _Window] = {}
        self._truth: dict[tuple[int, Event, date], list[list[str]]] = {}

    @property
    def busy(self) -> bool:
        """A campaign READY or SENDING, or a window still open."""
        return bool(self._windows) or any(
            c.state in (State.READY, State.SENDING) for c in self.resources.campaigns.values())

    def ground_truth(self) -> set[tuple[int, str, str, date]]:
        return {(cid, event.value, address, day)
                for (cid, event, day), lists in self._truth.items()
                for addresses in lists for address in addresses}

    def progress(self, campaign: SandboxCampaign) -> SandboxCampaign:
        """The campaign with how far its run has come."""
        run = self.runs.get(campaign.id)
        if run is None:
            return campaign
        return replace(campaign, contacts_total=len(run.rows), contacts_done=run.position)

    def step(self, wall: float, mono: float) -> None:
        """One tick: start due campaigns, handle a chunk of each, close windows whose time
        is up into callbacks."""
        campaigns = self.resources.campaigns
        for campaign in list(campaigns.values()):
            if campaign.state is State.READY and campaign.when <= wall:
                self._start(campaign)
        for campaign_id, run in self.runs.items():
            sending = campaigns.get(campaign_id)
            if sending is not None and sending.state is State.SENDING:
                self._advance(sending, run, wall, mono)
        self._close_windows(mono)

    def _start(self, campaign: SandboxCampaign) -> None:
        faults = self.dice.faults or PlatformFaults()
        rows = self.resources.rows(campaign.list_id)
        bodies = []
        for payload in campaign.payloads:
            template = self.resources.templates.get(payload.template)
            if template is None:  # deleted since it was attached: the platform can't send
                self._finish(campaign, State.ERROR)
                return
            bodies.append((payload.type, template.body))
        share = faults.fail_campaigns_after
        stop_at = len(rows) if share is None else min(len(rows), int(len(rows) * share))
        rng = random.Random(f"{self.settings.seed}:{campaign.id}")
        self.runs[campaign.id] = Run(rows, bodies, rng, self.settings.rates,
                                     faults.withhold_submitted_rate, stop_at)
        self.resources.campaigns[campaign.id] = replace(campaign, state=State.SENDING)

    def _advance(self, campaign: SandboxCampaign, run: Run, wall: float, mono: float) -> None:
        for (event, channel), addresses in run.step(CHUNK).items():
            if addresses:
                self._window(campaign.id, event, channel, wall, mono).extend(addresses)
        if run.finished:
            done = run.stop_at >= len(run.rows)
            self._finish(campaign, State.DONE if done else State.ERROR)

    def _finish(self, campaign: SandboxCampaign, state: State) -> None:
        run = self.runs.get(campaign.id)
        total, done = (len(run.rows), run.position) if run else (0, 0)
        self.resources.campaigns[campaign.id] = replace(
            campaign, state=state, contacts_total=total, contacts_done=done)

    def _window(self, campaign_id: int, event: Event, channel: Channel, wall: float,
                mono: float) -> list[str]:
        key = (campaign_id, event, channel)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(int(wall), mono, [])
        return window.addresses

    def _close_windows(self, mono: float) -> None:
        for key, window in list(self._windows.items()):
            if mono - window.opened < self.settings.callback_window:
                continue
            del self._windows[key]
            campaign_id, event, channel = key
            day = datetime.fromtimestamp(window.when, UTC).date()
            self._truth.setdefault((campaign_id, event, day), []).append(window.addresses)
            campaign = self.resources.campaigns.get(campaign_id)
            if campaign is not None and campaign.event_callback:
                self.delivery.queue(campaign_id, campaign.event_callback, event, window.when,
                                    channel, window.addresses, mono)
