"""Callback delivery: the queue of callbacks waiting to be POSTed, retries and injected faults.

Not thread-safe by itself: ``PlatformSandbox`` holds its lock around every call, never across
the POST itself (``post``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import httpx

from optibridge.sandbox.platform.contract import Channel, Event, callback_body
from optibridge.sandbox.platform.model import CallbackAttempt, FaultDice, Settings


@dataclass(frozen=True)
class Callback:
    """One callback due to be POSTed: one event, one moment, addresses of one channel."""

    campaign_id: int
    url: str
    event: Event
    when: int  # Unix seconds
    channel: Channel
    addresses: tuple[str, ...]
    due: float  # monotonic
    attempt: int = 1
    duplicate: bool = False  # a deliberate re-send (fault), not a retry


class CallbackDelivery:
    """Callbacks waiting or in flight, and every attempt made so far."""

    def __init__(self, settings: Settings, dice: FaultDice) -> None:
        self.settings = settings
        self.dice = dice
        self.pending: list[Callback] = []
        self.in_flight = 0
        self.attempts: list[CallbackAttempt] = []

    @property
    def busy(self) -> bool:
        return bool(self.pending or self.in_flight)

    def queue(self, campaign_id: int, url: str, event: Event, when: int, channel: Channel,
              addresses: list[str], now: float) -> None:
        """The addresses of one closed window, as callbacks of at most the configured size."""
        size = self.settings.max_addresses_per_callback
        for start in range(0, len(addresses), size):
            self.pending.append(Callback(campaign_id, url, event, when, channel,
                                         tuple(addresses[start:start + size]),
                                         now + self.dice.callback_delay()))

    def take_due(self, now: float) -> list[Callback]:
        """The callbacks due by ``now``, oldest first (or shuffled, per fault), as in flight."""
        due = [c for c in self.pending if c.due <= now]
        if not due:
            return []
        self.pending = [c for c in self.pending if c.due > now]
        due.sort(key=lambda c: c.due)
        if self.dice.faults and self.dice.faults.reorder_callbacks:
            self.dice.rng.shuffle(due)
        self.in_flight += len(due)
        return due

    def fails_by_fault(self) -> bool:
        """Whether the next POST is dropped (counted as a 503) by the fault plan."""
        faults = self.dice.faults
        return faults is not None and self.dice.rng.random() < faults.callback_error_rate

    def record(self, callback: Callback, status: int | None) -> None:
        """The answer to one POST: on a 2xx maybe a deliberate duplicate, else a retry."""
        self.in_flight -= 1
        self.attempts.append(CallbackAttempt(
            callback.campaign_id, callback.url, callback.event, len(callback.addresses),
            status, callback.attempt, callback.duplicate, callback.when))
        now = time.monotonic()
        if status is not None and 200 <= status < 300:
            faults = self.dice.faults
            if (not callback.duplicate and faults
                    and self.dice.rng.random() < faults.duplicate_callback_rate):
                delay = self.dice.rng.random() * self.settings.tick * 4
                self.pending.append(replace(callback, due=now + delay, attempt=1,
                                            duplicate=True))
            return
        if callback.attempt < self.settings.callback_attempts:
            backoff = min(30.0, self.settings.callback_retry * 2 ** (callback.attempt - 1))
            self.pending.append(replace(callback, due=now + backoff,
                                        attempt=callback.attempt + 1))


async def post(client: httpx.AsyncClient, callback: Callback) -> int | None:
    """POST one callback; its status, or None if no answer came."""
    body = callback_body(callback.event, callback.when, callback.channel, callback.addresses)
    try:
        response = await client.post(
            callback.url, content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"})
    except httpx.HTTPError:
        return None
    return response.status_code
