"""The retry and outcome policy both clients follow: which failures are tried again, after
how long (exponential backoff, full jitter, or the server's ``Retry-After``), and what a
failure says about whether the request was applied.

A call says how far it may be repeated (``Resend``): an idempotent call is tried again after
any failure a later try may get past; a call that must not run twice only after failures
that prove nothing was applied; some calls are never tried twice by the client (their
caller's back-off decides, as reporting's pause does).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import httpx

from optibridge.failures import CallFailed, NotReached, OutcomeUnknown, RateLimited, ServerFailed

log = logging.getLogger(__name__)
T = TypeVar("T")

# Transport errors raised before any byte of the request left: surely not applied.
NOT_SENT: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


class Resend(enum.Enum):
    """How far a call may be repeated by its client."""

    ALWAYS = "always"  # idempotent: after any failure a later try may get past
    UNSENT = "unsent"  # must not run twice: only after failures that prove nothing applied
    NEVER = "never"  # one try; the caller backs off (and reads back what may have landed)


class Lost(enum.Enum):
    """What a transport error says about the request."""

    BAD_URL = "bad URL"  # nothing sent, and trying again cannot help
    NO_CONNECTION = "no connection"  # nothing sent; a later try may connect
    ANSWER = "answer lost"  # the request may have reached the service


def lost(error: httpx.TransportError) -> Lost:
    if isinstance(error, httpx.UnsupportedProtocol):
        return Lost.BAD_URL
    if isinstance(error, NOT_SENT):
        return Lost.NO_CONNECTION
    return Lost.ANSWER


def outcome_unknown(failure: CallFailed, resend: Resend) -> bool:
    """True when ``failure`` leaves a call that may not run twice (``resend`` other than
    ALWAYS) in doubt: a 5xx or a lost answer may come after the request was applied."""
    return resend is not Resend.ALWAYS and isinstance(failure, (ServerFailed, OutcomeUnknown))


def proxy_page(response: httpx.Response) -> bool:
    """An HTML error page: what a proxy or load balancer answers, not the service's API."""
    kind = response.headers.get("Content-Type", "")
    return "html" in kind or response.text.lstrip()[:1] == "<"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        jittered = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            # The server said when: wait that long, plus a little jitter so that many
            # waiting callers do not all come back in the same instant.
            return min(retry_after, self.max_delay * 10) + random.uniform(0, 0.05)
        return jittered

    @staticmethod
    def retries(failure: CallFailed, resend: Resend) -> bool:
        """Whether a call of this ``resend`` is tried again after ``failure``."""
        if resend is Resend.NEVER:
            return False
        if isinstance(failure, RateLimited) or (isinstance(failure, NotReached)
                                                and failure.transient):
            return True  # nothing was applied
        return resend is Resend.ALWAYS and isinstance(failure, (ServerFailed, OutcomeUnknown))

    async def run(self, resend: Resend, attempt: Callable[[int], Awaitable[T]]) -> T:
        """``attempt(n)`` for n = 1, 2, ... until it returns, or raises a failure this
        policy does not retry, or the attempts are spent (then its last failure)."""
        number = 0
        while True:
            number += 1
            try:
                return await attempt(number)
            except CallFailed as failure:
                if number >= max(1, self.attempts) or not self.retries(failure, resend):
                    raise
                pause = self.delay(number, failure.retry_after)
                log.warning("%s: attempt %d failed, retrying in %.2fs", failure, number, pause)
            await asyncio.sleep(pause)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())
