"""Client of ``saveEvent``, Optimove's External Vendors Campaign Engagement Metrics endpoint
(optimove-api.md section 7).

The body is serialised once; exactly those bytes are signed (HMAC-SHA256 keyed with the
tenant token, lowercase hex) and sent. No event ID or de-duplication is documented, so a
call is never retried here: like UpdateCampaignInteractions, one whose outcome is unknown
raises ``OptimoveOutcomeUnknown`` and its batch is in doubt. An answer whose body says
error is an error even with HTTP 200.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from optibridge import observe
from optibridge.optimove.errors import (
    BatchTooLarge,
    EmptyBatch,
    OptimoveAuthError,
    OptimoveError,
    OptimoveNotReached,
    OptimoveOutcomeUnknown,
    OptimoveRateLimited,
    OptimoveRequestRejected,
    OptimoveUnavailable,
)
from optibridge.ratelimit import Priority, SlidingWindowLimiter
from optibridge.retry import Lost, lost

CALL = "saveEvent"
SIGNATURE_VERSION = "1"
# Words of an error body that refuses the content itself (the sister Server-Side Events API
# answers "Failed to validate ..."): sending the same body again cannot help.
_REFUSAL_WORDS = ("validat", "invalid", "missing", "required", "not allowed", "unknown event",
                  "too old", "older than")


@dataclass(frozen=True)
class MetricEvent:
    """One event as saveEvent takes it (``category`` is always ``metric``)."""

    event: str
    customer: str
    timestamp: datetime  # UTC (naive is read as UTC)
    context: Mapping[str, str | int]


def utc_timestamp(when: datetime) -> str:
    """The sister API's form: ``2020-04-12 17:32:06.094 UTC``."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond // 1000:03d} UTC"


def event_json(event: MetricEvent) -> dict[str, Any]:
    return {"event": event.event, "category": "metric",
            "timestamp": utc_timestamp(event.timestamp), "customer": event.customer,
            "context": dict(event.context)}


def serialise(events: Sequence[MetricEvent]) -> bytes:
    """The body, once: one event as an object, several as an array."""
    items = [event_json(e) for e in events]
    value: Any = items[0] if len(items) == 1 else items
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def signature(token: bytes, body: bytes) -> str:
    """``x-optimove-signature-content``: lowercase hex HMAC-SHA256 of the exact body."""
    return hmac.new(token, body, hashlib.sha256).hexdigest()


def _text(response: httpx.Response) -> str:
    return response.text[:300]


def read_answer(status: int, content: bytes) -> str:
    """The message of a success answer ``{"status": "success", "message": ...}``; raises
    for an error body (refused: its content; otherwise unknown) or one we cannot read."""
    shown = content[:300].decode("utf-8", "replace")
    try:
        parsed = json.loads(content)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("status"), str):
        raise OptimoveOutcomeUnknown(CALL, f"answered {status} with a body that is not "
                                     f"{{status, message}}: {shown!r}", status)
    message = str(parsed.get("message", ""))
    if parsed["status"].lower() == "success":
        return message
    if any(word in message.lower() for word in _REFUSAL_WORDS):
        raise OptimoveRequestRejected(CALL, status, content.decode("utf-8", "replace"))
    raise OptimoveOutcomeUnknown(CALL, f"answered {status} with an error body; it may or may "
                                 f"not have been applied: {shown!r}", status)


class EngagementEventsClient:
    """One tenant's saveEvent endpoint, its token and its own rate limit."""

    def __init__(self, url: str, token: bytes, *, limiter: SlidingWindowLimiter,
                 timeout: float = 30.0, transport: httpx.AsyncBaseTransport | None = None
                 ) -> None:
        self.url = url
        self._token = token
        self._limiter = limiter
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def save_events(self, events: Sequence[MetricEvent], max_batch: int) -> str:
        """Send one batch exactly once; Optimove's message (an ID) on success."""
        if not events:
            raise EmptyBatch(CALL, "the report batch has no events")
        if len(events) > max_batch:
            raise BatchTooLarge(CALL, f"{len(events)} events in one call, the limit is "
                             f"{max_batch}")
        body = serialise(events)
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "X-Optimove-Signature-Version": SIGNATURE_VERSION,
                   "x-optimove-signature-content": signature(self._token, body)}
        async with self._limiter.slot(Priority.REPORT):
            self._limiter.check()  # the last moment before the call goes out
            response = await self._post(body, headers)
        return self._outcome(response)

    async def _post(self, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
        try:
            response = await self._http.post(self.url, content=body, headers=headers)
        except httpx.TransportError as error:
            observe.api_call("optimove", CALL, "error", False)
            what = f"{type(error).__name__}: {error}"[:300]
            if lost(error) is not Lost.ANSWER:  # nothing was sent
                raise OptimoveUnavailable(CALL, f"{lost(error).value} ({what})") from None
            raise OptimoveOutcomeUnknown(CALL, f"sent, then no complete answer ({what}); it "
                                         "may or may not have been applied") from None
        observe.api_call("optimove", CALL, response.status_code, False)
        return response

    def _outcome(self, response: httpx.Response) -> str:
        status = response.status_code
        if 200 <= status < 300:
            return read_answer(status, response.content)
        raise self._failure(response)

    @staticmethod
    def _failure(response: httpx.Response) -> OptimoveError:
        status = response.status_code
        if status >= 500:
            return OptimoveOutcomeUnknown(CALL, f"answered {status}, may or may not have been "
                                          f"applied: {_text(response)}", status)
        if status == 429:
            return OptimoveRateLimited(CALL, f"rate limited (429): {_text(response)}", status)
        if status in (401, 403):
            return OptimoveAuthError(CALL, status, response.text)
        kind = response.headers.get("Content-Type", "")
        if status == 400 and "json" in kind:
            return OptimoveRequestRejected(CALL, status, response.text)
        return OptimoveNotReached(CALL, status, response.text)
