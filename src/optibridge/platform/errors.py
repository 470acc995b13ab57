"""Typed errors of the platform client: each says which call failed and, by its kind
(``optibridge.failures``), what failed."""

from __future__ import annotations

from optibridge.failures import (
    AuthRefused,
    CallFailed,
    NotReached,
    OutcomeUnknown,
    RateLimited,
    RequestRefused,
    ServerFailed,
    UnexpectedAnswer,
)


class PlatformError(CallFailed):
    """Base of every platform client error."""

    SERVICE = "platform"


class PlatformRequestRejected(PlatformError, RequestRefused):
    """4xx (other than auth, 408 and 429): the request is wrong and retrying will not help."""


class PlatformNotFound(PlatformRequestRejected):
    """404: the campaign, list or template ID is unknown to the platform."""


class StateMoveRefused(PlatformRequestRejected):
    """A state move against the arrows: refused locally (status None) or by the platform
    (409)."""


class PlatformAuthError(PlatformError, AuthRefused):
    """401/403: the platform API key is missing, wrong or lacks the permission."""


class PlatformRateLimited(PlatformError, RateLimited):
    """429 and out of retries."""


class PlatformServerError(PlatformError, ServerFailed):
    """5xx and out of retries."""


class PlatformUnavailable(PlatformError, NotReached):
    """Nothing was applied: no connection (refused, or not made in time), a bad URL, or a
    proxy's answer instead of the platform's (408, an HTML error page)."""


class PlatformOutcomeUnknown(PlatformError, OutcomeUnknown):
    """Sent, then no answer (a timeout, a dropped connection), or a 5xx to a call that must
    not run twice (a create, attaching a payload): it may or may not have been applied."""


class PlatformUnexpectedAnswer(PlatformError, UnexpectedAnswer):
    """A 2xx whose body we cannot read (not JSON, a missing field, an unknown state)."""
