"""saveEvent, Optimove's External Vendors Campaign Engagement Metrics endpoint, served
strictly from its public page [EXTM] and the sister Server-Side Events API (optimove-api.md
section 7): the signature over the raw body, ``category`` = ``metric``, exactly one of
``customer``/``visitor``, a UTC ``timestamp`` at most 7 days old, configured event names
only, the batch limit. Answers ``{"status": ..., "message": ...}``; every refusal names
the problem. Received events are counted like UpdateCampaignInteractions' calls: a repeat
counts twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_AGE = timedelta(days=7)
MAX_AHEAD = timedelta(minutes=5)  # a clock a little ahead of ours is not refused
MAX_VALUE_LENGTH = 255  # Server-Side Events: string values of at most 255 characters
DEFAULT_EVENTS = frozenset({"sent", "delivered", "opened", "clicked", "bounced", "dropped",
                            "unsubscribed", "spam_report"})
_TENANT_IN = re.compile(r"metric-(\d+)")
_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)"
                    r"(?: ?(UTC|Z|\+00:00))?$")
_ALLOWED = {"event", "category", "timestamp", "customer", "visitor", "context", "tenant"}


class Refused(Exception):
    """A refusal: the HTTP status and the message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class MetricTenant:
    """One Optimove tenant's saveEvent settings in the sandbox."""

    name: str  # the sandbox tenant it reports into
    tenant_id: int
    token: str
    events: frozenset[str] = DEFAULT_EVENTS
    max_batch: int = 1_000


@dataclass(frozen=True)
class ReceivedEvent:
    """One event saveEvent accepted."""

    seq: int
    event: str
    customer: str | None
    visitor: str | None
    timestamp: str
    context: Mapping[str, Any] = field(default_factory=dict)

    def key(self) -> tuple[str, str, str, str]:
        """(event, customer or visitor, timestamp, context as sorted JSON): a repeat of an
        event repeats all four."""
        return (self.event, self.customer or self.visitor or "", self.timestamp,
                json.dumps(dict(self.context), sort_keys=True))

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "event": self.event, "customer": self.customer,
                "visitor": self.visitor, "timestamp": self.timestamp,
                "context": dict(self.context)}


def tenant_id_of(path: str, host: str) -> int | None:
    """``metric-<tenantID>`` from the host (Optimove's form) or the first path segment (the
    sandbox serves every tenant on one port)."""
    for where in (host.split(":")[0], path):
        found = _TENANT_IN.search(where)
        if found:
            return int(found.group(1))
    return None


def check_signature(tenant: MetricTenant, headers: Mapping[str, str], raw: bytes) -> None:
    version = headers.get("x-optimove-signature-version")
    if version != "1":
        raise Refused(401, f"Failed to validate signature: X-Optimove-Signature-Version must "
                      f"be 1, got {version!r}")
    given = headers.get("x-optimove-signature-content")
    if not given:
        raise Refused(401, "Failed to validate signature: x-optimove-signature-content is "
                      "missing")
    expected = hmac.new(tenant.token.encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        raise Refused(401, "Failed to validate signature: x-optimove-signature-content is not "
                      "the HMAC-SHA256 of the body with the tenant's token")


def parse_timestamp(value: Any, where: str, now: datetime) -> datetime:
    if not isinstance(value, str):
        raise Refused(400, f"Failed to validate {where}.timestamp: must be a string")
    found = _STAMP.match(value)
    if not found or found.group(3) is None:
        raise Refused(400, f"Failed to validate {where}.timestamp: {value!r} is not UTC "
                      "('YYYY-MM-DD HH:MM:SS.fff UTC' or ISO 8601 with Z)")
    try:
        when = datetime.fromisoformat(f"{found.group(1)}T{found.group(2)}").replace(tzinfo=UTC)
    except ValueError:
        raise Refused(400, f"Failed to validate {where}.timestamp: {value!r} is not a "
                      "date and time") from None
    if when < now - MAX_AGE:
        raise Refused(400, f"Failed to validate {where}.timestamp: {value} is older than "
                      "7 days")
    if when > now + MAX_AHEAD:
        raise Refused(400, f"Failed to validate {where}.timestamp: {value} is in the future")
    return when


def _identity(item: Mapping[str, Any], where: str) -> tuple[str | None, str | None]:
    customer, visitor = item.get("customer"), item.get("visitor")
    if (customer is None) == (visitor is None):
        raise Refused(400, f"Failed to validate {where}: exactly one of customer and visitor "
                      "is required")
    for name, value in (("customer", customer), ("visitor", visitor)):
        if value is not None and (not isinstance(value, str) or not value
                                  or len(value) > MAX_VALUE_LENGTH):
            raise Refused(400, f"Failed to validate {where}.{name}: a non-empty string of "
                          f"at most {MAX_VALUE_LENGTH} characters")
    return customer, visitor


def _context(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Refused(400, f"Failed to validate {where}.context: must be an object")
    for name, item in value.items():
        if isinstance(item, bool) or not isinstance(item, str | int | float) \
                or (isinstance(item, str) and len(item) > MAX_VALUE_LENGTH):
            raise Refused(400, f"Failed to validate {where}.context.{name}: a number or a "
                          f"string of at most {MAX_VALUE_LENGTH} characters")
    return dict(value)


def check_event(item: Any, where: str, names: Collection[str], now: datetime
                ) -> tuple[str, str | None, str | None, str, dict[str, Any]]:
    """One event, checked whole: (event, customer, visitor, timestamp, context)."""
    if not isinstance(item, dict):
        raise Refused(400, f"Failed to validate {where}: must be an object")
    extra = sorted(set(item) - _ALLOWED)
    if extra:  # [EXTM]: extra attributes are ignored; kept out of what is stored
        item = {k: v for k, v in item.items() if k in _ALLOWED}
    event = item.get("event")
    if not isinstance(event, str) or not event:
        raise Refused(400, f"Failed to validate {where}.event: is required")
    if event not in names:
        raise Refused(400, f"Failed to validate {where}.event: unknown event name {event!r} "
                      f"(configured: {', '.join(sorted(names))})")
    if item.get("category") != "metric":
        raise Refused(400, f"Failed to validate {where}.category: must be 'metric', got "
                      f"{item.get('category')!r}")
    customer, visitor = _identity(item, where)
    parse_timestamp(item.get("timestamp"), where, now)
    return event, customer, visitor, str(item["timestamp"]), _context(item.get("context"),
                                                                        where)


def check_body(tenant: MetricTenant, raw: bytes, now: datetime
               ) -> list[tuple[str, str | None, str | None, str, dict[str, Any]]]:
    """Every event of the body, all checked before any is counted."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "Failed to validate body: not JSON") from None
    items = body if isinstance(body, list) else [body]
    if not items:
        raise Refused(400, "Failed to validate body: no events")
    if len(items) > tenant.max_batch:
        raise Refused(400, f"Failed to validate body: {len(items)} events in one call, the "
                      f"limit is {tenant.max_batch}")
    return [check_event(item, "event" if len(items) == 1 else f"event[{i}]", tenant.events,
                        now) for i, item in enumerate(items)]


def answer(status: str, message: str) -> bytes:
    return json.dumps({"status": status, "message": message}).encode()
