"""An exact sliding-window rate limiter, one per API key, shared by every call of that key."""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import IntEnum


class Priority(IntEnum):
    """Lower runs first: an audience pull must never wait behind a reporting backlog."""

    PULL = 0
    NORMAL = 1
    REPORT = 2


class SlidingWindowLimiter:
    """Never lets more than ``requests`` calls reach the server in any window of
    ``per_seconds``, whatever the network does.

    A call holds its slot from the moment it is let go until ``per_seconds`` after its
    answer came back (``slot``): the server received it somewhere in between, so any window
    of the server's contains only calls whose slots we still count. ``margin`` absorbs
    clock differences. Waiters are served by priority, then first come first served.
    """

    def __init__(self, requests: int, per_seconds: float, *, margin: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if requests < 1 or per_seconds <= 0:
            raise ValueError("a rate limit needs requests >= 1 and per_seconds > 0")
        self.requests = requests
        self.per_seconds = per_seconds
        self._span = per_seconds + margin
        self._clock = clock
        self._slots: dict[int, float] = {}  # slot -> when it was freed (inf: in flight)
        self._ids = itertools.count()
        self._waiters: list[tuple[int, int, asyncio.Future[int]]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self.granted = 0

    def in_use(self) -> float:
        """Share of the window's budget held right now (0..1)."""
        self._expire(self._clock())
        return len(self._slots) / self.requests

    def pending(self) -> int:
        return sum(1 for _, _, future in self._waiters if not future.done())

    @asynccontextmanager
    async def slot(self, priority: Priority = Priority.NORMAL) -> AsyncIterator[None]:
        """Hold one slot around one HTTP call (request sent to answer received)."""
        slot = await self._take(priority)
        try:
            yield
        finally:
            self._slots[slot] = self._clock()
            self._grant()

    async def acquire(self, priority: Priority = Priority.NORMAL) -> None:
        """Take a slot for a call that is over at once (counted from now)."""
        slot = await self._take(priority)
        self._slots[slot] = self._clock()
        self._grant()  # waiters may need a timer now that this slot has an end

    async def _take(self, priority: Priority) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (int(priority), next(self._order), future))
        self._grant()
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted, then abandoned
                self._slots[future.result()] = self._clock()
            raise

    def _expire(self, now: float) -> None:
        for slot, freed in list(self._slots.items()):
            if now - freed >= self._span:
                del self._slots[slot]

    def _grant(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiters:
            _, _, future = self._waiters[0]
            if future.done():
                heapq.heappop(self._waiters)
                continue
            now = self._clock()
            self._expire(now)
            if len(self._slots) >= self.requests:
                soonest = min(self._slots.values())
                if soonest != math.inf:  # else a call in flight frees a slot when it ends
                    self._timer = asyncio.get_running_loop().call_later(
                        max(soonest + self._span - now, 0.0), self._grant)
                return
            heapq.heappop(self._waiters)
            slot = next(self._ids)
            self._slots[slot] = math.inf  # in flight until the caller is done with it
            self.granted += 1
            future.set_result(slot)


_registry: dict[tuple[str, int, float], SlidingWindowLimiter] = {}


def limiter_for(api_key: str, requests: int, per_seconds: float) -> SlidingWindowLimiter:
    """The process-wide limiter of one API key (keyed by a hash: the key is not kept)."""
    fingerprint = hashlib.sha256(api_key.encode()).hexdigest()
    key = (fingerprint, requests, per_seconds)
    limiter = _registry.get(key)
    if limiter is None:
        limiter = _registry[key] = SlidingWindowLimiter(requests, per_seconds)
    return limiter
