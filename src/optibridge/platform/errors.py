"""Typed errors of the platform client: each says which call failed and why.

Messages never contain the API key: they are built from the call name, the status and at
most 300 characters of the platform's answer.
"""

from __future__ import annotations


class PlatformError(Exception):
    """Base of every platform client error."""

    def __init__(self, call: str, message: str, status: int | None = None) -> None:
        super().__init__(f"platform {call}: {message}")
        self.call = call
        self.message = message
        self.status = status
        self.retried = False  # the failing answer came to a retry (an earlier try may have landed)


class PlatformRequestRejected(PlatformError):
    """4xx (other than 429): the request is wrong and retrying will not help."""


class PlatformAuthError(PlatformRequestRejected):
    """401: the platform API key is missing or wrong."""


class PlatformNotFound(PlatformRequestRejected):
    """404: the campaign, list or template ID is unknown to the platform."""


class StateMoveRefused(PlatformRequestRejected):
    """A state move against the arrows: refused locally (status None) or by the platform
    (409)."""


class PlatformRateLimited(PlatformError):
    """429 and out of retries."""


class PlatformServerError(PlatformError):
    """5xx and out of retries."""


class PlatformUnavailable(PlatformError):
    """No answer (connection refused, reset or timed out) and out of retries."""


class PlatformOutcomeUnknown(PlatformError):
    """A call that must not run twice (a create, attaching a payload) may or may not have
    been applied: a 5xx, a timeout or a dropped connection after the request was sent.
    Not retried."""
