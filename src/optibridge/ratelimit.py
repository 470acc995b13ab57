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
from typing import Protocol


class Priority(IntEnum):
    """Lower runs first: an audience pull must never wait behind a reporting backlog."""

    PULL = 0
    NORMAL = 1
    REPORT = 2
    READBACK = 3  # reading back in-doubt batches waits behind everything else


class SharedWindow(Protocol):
    """The key's window as every process sees it (the database counts the calls): a call
    enters it before it goes out and leaves it when its answer is back."""

    async def enter(self) -> int:
        """Wait until the key's window has room; a token for ``leave``."""
        ...

    async def leave(self, token: int) -> None: ...

    def check(self) -> None:
        """Raise if a call must not go out right now (called just before it does)."""
        ...


class SlidingWindowLimiter:
    """Never lets more than ``requests`` calls reach the server in any window of
    ``per_seconds``, whatever the network does.

    A call holds its slot from the moment it is let go until ``per_seconds`` after its
    answer came back (``slot``): the server received it somewhere in between, so any window
    of the server's contains only calls whose slots we still count. ``margin`` absorbs
    clock differences. Waiters are served by priority, then first come first served.

    With ``shared``, a call also takes its place in the key's window that other processes
    count too (after this process's own window let it go, so priorities still hold here).
    """

    def __init__(self, requests: int, per_seconds: float, *, margin: float = 0.1,
                 clock: Callable[[], float] = time.monotonic,
                 shared: SharedWindow | None = None) -> None:
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
        self.shared = shared

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
        token: int | None = None
        try:
            if self.shared is not None:
                token = await self.shared.enter()
            yield
        finally:
            self._slots[slot] = self._clock()
            self._grant()
            if token is not None and self.shared is not None:
                await self._leave(self.shared, token)

    def check(self) -> None:
        """Raise if the call about to go out must not (see ``SharedWindow.check``)."""
        if self.shared is not None:
            self.shared.check()

    @staticmethod
    async def _leave(shared: SharedWindow, token: int) -> None:
        # Shielded: a cancelled caller's call still leaves the window. If leaving fails,
        # the call counts until it would have timed out: too many counted, never too few.
        try:
            await asyncio.shield(shared.leave(token))
        except Exception:
            return

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
