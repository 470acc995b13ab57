"""An exact sliding-window rate limiter, one per API key, shared by every call of that key."""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable
from enum import IntEnum


class Priority(IntEnum):
    """Lower runs first: an audience pull must never wait behind a reporting backlog."""

    PULL = 0
    NORMAL = 1
    REPORT = 2


class SlidingWindowLimiter:
    """Never lets more than ``requests`` calls start in any window of ``per_seconds``.

    Each grant records its start time; a new grant waits until the oldest of the last
    ``requests`` grants is at least ``per_seconds + margin`` old. ``margin`` absorbs the
    jitter between our clock and the server's receipt of the request.
    Waiters are served by priority, then first come first served.
    """

    def __init__(self, requests: int, per_seconds: float, *, margin: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if requests < 1 or per_seconds <= 0:
            raise ValueError("a rate limit needs requests >= 1 and per_seconds > 0")
        self.requests = requests
        self.per_seconds = per_seconds
        self._span = per_seconds + margin
        self._clock = clock
        self._starts: deque[float] = deque()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self.granted = 0

    def in_use(self) -> float:
        """Share of the window's budget used by the grants of the last window (0..1)."""
        self._expire(self._clock())
        return len(self._starts) / self.requests

    def pending(self) -> int:
        return sum(1 for _, _, future in self._waiters if not future.done())

    async def acquire(self, priority: Priority = Priority.NORMAL) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (int(priority), next(self._order), future))
        self._grant()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                # Granted but the caller went away: the slot stays used, which is safe.
                pass
            raise

    def _expire(self, now: float) -> None:
        while self._starts and now - self._starts[0] >= self._span:
            self._starts.popleft()

    def _grant(self) -> None:
        self._timer = None
        while self._waiters:
            _, _, future = self._waiters[0]
            if future.done():
                heapq.heappop(self._waiters)
                continue
            now = self._clock()
            self._expire(now)
            if len(self._starts) >= self.requests:
                wait = self._starts[0] + self._span - now
                loop = asyncio.get_running_loop()
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = loop.call_later(max(wait, 0.0), self._grant)
                return
            heapq.heappop(self._waiters)
            self._starts.append(now)
            self.granted += 1
            future.set_result(None)


_registry: dict[tuple[str, int, float], SlidingWindowLimiter] = {}


def limiter_for(api_key: str, requests: int, per_seconds: float) -> SlidingWindowLimiter:
    """The process-wide limiter of one API key (keyed by a hash: the key is not kept)."""
    fingerprint = hashlib.sha256(api_key.encode()).hexdigest()
    key = (fingerprint, requests, per_seconds)
    limiter = _registry.get(key)
    if limiter is None:
        limiter = _registry[key] = SlidingWindowLimiter(requests, per_seconds)
    return limiter
