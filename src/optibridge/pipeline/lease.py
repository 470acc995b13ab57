"""Keeps a tenant's Optimove calls inside one rate limit across processes, and out of the
hands of a process that lost the tenant's lease.

One process at a time holds a tenant's lease (in the database) and does all its background
work. Every Optimove call first takes its place in the API key's window as the database
counts it (``KeyWindow``: replicas, other tenants with the same key and CLI commands all
count there). Under a lease (``LeasedWindow``) the same transaction checks, by the
database's clock, that the lease is still this process's and has more than one window
left; the call then goes out only if this process's own monotonic clock says that is
still true at the moment of sending, so a process that was paused (SIGSTOP, a VM freeze)
between the check and the call finds out before it sends. Every batch state change
carries the lease's epoch, so a stale holder's writes are refused as well.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

from optibridge.domain import LeaseClaim, LeaseGrant
from optibridge.ratelimit import Priority, SlidingWindowLimiter
from optibridge.store import Store
from optibridge.store.leases import LeaseLost

__all__ = ["FollowingLimiter", "FollowingWindow", "KeyWindow", "LeaseLost", "LeasedLimiter",
           "LeasedWindow", "fingerprint"]


def fingerprint(api_key: str) -> str:
    """How the database names an API key (never the key itself)."""
    return hashlib.sha256(api_key.encode()).hexdigest()


class KeyWindow:
    """The API key's window as the database counts it (a ``SharedWindow``)."""

    def __init__(self, store: Store, api_key: str, requests: int, per_seconds: float, *,
                 margin: float = 0.1, call_timeout: float = 30.0) -> None:
        self.store = store
        self.key = fingerprint(api_key)
        self.requests = requests
        self.span = per_seconds + margin
        self.unended_for = call_timeout + margin

    def claim(self) -> LeaseClaim | None:
        return None

    async def enter(self) -> int:
        while True:
            asked = time.monotonic()
            claim = self.claim()
            found = await self.store.reserve_call(
                self.key, self.requests, self.span, claim, min_lease_left=self.span,
                unended_for=self.unended_for)
            if claim is not None:
                if found.lease_left <= self.span:
                    raise LeaseLost("the tenant's lease expired or moved to another process")
                self.confirmed(claim, asked, found.lease_left)
            if found.call_id is not None:
                return found.call_id
            await asyncio.sleep(found.wait)

    async def leave(self, token: int) -> None:
        await self.store.end_call(token)

    def confirmed(self, claim: LeaseClaim, asked: float, left: float) -> None:
        """The database said the lease has ``left`` seconds, asked at ``asked``."""

    def check(self) -> None:
        return


class LeasedWindow(KeyWindow):
    """The key's window, entered only while this process holds the tenant's lease."""

    def __init__(self, store: Store, api_key: str, requests: int, per_seconds: float,
                 tenant: str, holder: str, **options: float) -> None:
        super().__init__(store, api_key, requests, per_seconds, **options)
        self.tenant = tenant
        self.holder = holder
        self.epoch = 0  # 0: not held
        self.deadline = 0.0  # monotonic: calls may start until then

    def claim(self) -> LeaseClaim:
        if not self.epoch:
            raise LeaseLost("this process does not hold the tenant's lease")
        self.check()
        return LeaseClaim(self.tenant, self.holder, self.epoch)

    def held(self, grant: LeaseGrant, asked: float) -> None:
        if grant.epoch != self.epoch:
            self.deadline = 0.0
        self.epoch = grant.epoch
        self.confirmed(LeaseClaim(self.tenant, self.holder, grant.epoch), asked,
                       grant.remaining)

    def lost(self) -> None:
        self.epoch = 0
        self.deadline = 0.0

    def confirmed(self, claim: LeaseClaim, asked: float, left: float) -> None:
        if claim.epoch != self.epoch:
            return
        # Counted from before the question was asked, and a window short of the expiry:
        # the last call of this holder and the first of a successor never share a window.
        self.deadline = max(self.deadline, asked + left - self.span)

    def check(self) -> None:
        if not self.epoch or time.monotonic() >= self.deadline:
            raise LeaseLost("the tenant's lease expired or moved to another process")


class FollowingWindow(KeyWindow):
    """Another endpoint's window (saveEvent's own limit), entered under the same lease as
    the tenant's API key: the same claim and the same check before each call."""

    def __init__(self, store: Store, name: str, requests: int, per_seconds: float,
                 lease: LeasedWindow, **options: float) -> None:
        super().__init__(store, name, requests, per_seconds, **options)
        self.lease = lease

    def claim(self) -> LeaseClaim:
        return self.lease.claim()

    def confirmed(self, claim: LeaseClaim, asked: float, left: float) -> None:
        self.lease.confirmed(claim, asked, left)

    def check(self) -> None:
        self.lease.check()


class FollowingLimiter(SlidingWindowLimiter):
    """The limiter of a ``FollowingWindow``: a successor also waits one window before its
    first call there (the predecessor's last calls must not share a window with it)."""

    def __init__(self, window: FollowingWindow, primary: LeasedLimiter, *,
                 margin: float = 0.1) -> None:
        super().__init__(window.requests, window.span - margin, margin=margin, shared=window)
        self.primary = primary

    async def _take(self, priority: Priority) -> int:
        pause = self.primary.not_before - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        self.primary.window.check()
        return await super()._take(priority)


class LeasedLimiter(SlidingWindowLimiter):
    """A tenant's limiter under its lease: this process's priorities, the key's shared
    window, and a new holder's wait before its first call until the calls the database
    counts for the key (a predecessor's, a CLI command's) have left the window: at most
    one window, and none when nobody used the key lately."""

    def __init__(self, window: LeasedWindow, *, margin: float = 0.1) -> None:
        super().__init__(window.requests, window.span - margin, margin=margin, shared=window)
        self.window = window
        self.not_before = 0.0  # monotonic

    @property
    def epoch(self) -> int | None:
        return self.window.epoch or None

    def held(self, grant: LeaseGrant, asked: float, took_over: bool,
             wait: float | None = None) -> None:
        """``wait``: seconds the key's window needs to clear (None: a whole window)."""
        if took_over:
            self.not_before = time.monotonic() + min(
                self._span if wait is None else wait, self._span)
        self.window.held(grant, asked)

    async def window_clears_in(self) -> float:
        """How long the key's window, as the database counts it, needs to clear."""
        window = self.window
        return await window.store.window_clears_in(window.key, window.span,
                                                   window.unended_for)

    def lost(self) -> None:
        self.window.lost()

    async def _take(self, priority: Priority) -> int:
        pause = self.not_before - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        self.window.check()
        return await super()._take(priority)
