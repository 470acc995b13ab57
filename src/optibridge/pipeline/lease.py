"""Keeps a tenant's Optimove calls inside one rate limit across processes.

One process at a time holds a tenant's lease (in the database) and does all its background
work. Its calls are allowed only while the lease has more than one rate-limit window left,
and a process that takes the lease over waits one window first: so the last call of a dead
holder and the first call of its successor are never in the same window.
"""

from __future__ import annotations

import asyncio
import time

from optibridge.ratelimit import Priority, SlidingWindowLimiter


class LeaseLost(Exception):
    """This process no longer holds the tenant's lease: stop calling Optimove."""


class LeasedLimiter(SlidingWindowLimiter):
    def __init__(self, requests: int, per_seconds: float, *, margin: float = 0.1) -> None:
        super().__init__(requests, per_seconds, margin=margin)
        self.valid_until = 0.0  # wall-clock time; compared with the lease in the database
        self.not_before = 0.0

    def held(self, expires_at: float, took_over: bool, wait: bool = True) -> None:
        now = time.time()
        if took_over and wait:
            self.not_before = now + self._span
        self.valid_until = expires_at - self._span

    def lost(self) -> None:
        self.valid_until = 0.0

    async def _take(self, priority: Priority) -> int:
        pause = self.not_before - time.time()
        if pause > 0:
            await asyncio.sleep(pause)
        slot = await super()._take(priority)
        if time.time() >= self.valid_until:
            self._slots[slot] = self._clock()  # unused, but counted: safe
            self._grant()
            raise LeaseLost("the tenant's lease expired or moved to another process")
        return slot
