"""What failed when a call to Optimove or the platform failed: one root, one kind per cause.

``CallFailed`` is the root of both clients' errors (``optimove/errors.py`` and
``platform/errors.py`` subclass the kinds below, so a caller can ask either "which client?"
or "what failed?"). ``about_the_item`` is the one answer to the pipeline's question "is this
failure about the item itself (final after bounded tries, a dead letter), or recoverable
(pause, back off, try again later)?".

Messages never contain an API key: they are built from the call name, the status and at
most 300 characters of the other side's answer.
"""

from __future__ import annotations

from typing import ClassVar


class CallFailed(Exception):
    """A call to another service failed; the subclass says what failed."""

    SERVICE: ClassVar[str] = "service"  # how messages name the other side

    def __init__(self, call: str, message: str, status: int | None = None, *,
                 transient: bool = False, retry_after: float | None = None) -> None:
        super().__init__(f"{self.SERVICE} {call}: {message}")
        self.call = call
        self.message = message
        self.status = status
        self.transient = transient  # a try moments later may get through (no connection, 408)
        self.retry_after = retry_after  # seconds the other side asked us to wait
        self.body: str | None = None  # the other side's answer, when it is worth keeping
        self.retried = False  # the failing answer came to a retry (an earlier try may have landed)


class RequestRefused(CallFailed):
    """The other side refused the request's own content (a 400-type answer, or a limit we
    check before sending): the same request as it is can never work. About the item."""


class AuthRefused(CallFailed):
    """401/403: the API key is missing, wrong, revoked or lacks the permission. Not about
    the item: someone fixes the key and the same call then works."""


class RateLimited(CallFailed):
    """429 (and out of retries, or a call never retried)."""


class ServerFailed(CallFailed):
    """5xx (and out of retries)."""


class NotReached(CallFailed):
    """The request did not reach the service, so nothing was applied: no connection was
    made, or something in between answered instead (a proxy's 404, 408, 413, an HTML page)."""


class OutcomeUnknown(CallFailed):
    """The request was sent and its answer lost (a timeout, a dropped connection, a 5xx on
    a call that may not run twice): it may or may not have been applied."""


class UnexpectedAnswer(CallFailed):
    """A 2xx whose body the call cannot use (not JSON, the wrong shape, a missing field)."""


# Failures after which the request surely was not applied, for a call that is never tried
# again once it may have been sent (a create, UpdateCampaignInteractions, saveEvent).
NOT_APPLIED: tuple[type[CallFailed], ...] = (RequestRefused, AuthRefused, RateLimited, NotReached)

# Names of the database drivers' and SQLAlchemy's outage errors (no import of them here).
_OUTAGE_NAMES = frozenset({"OperationalError", "InterfaceError", "DisconnectionError",
                           "TimeoutError"})


def about_the_item(error: BaseException) -> bool:
    """True when trying the same item again cannot help: the other side refused its content,
    answered it with a body we cannot use (a page with a bad row comes back the same on
    every try), or our own code could not handle it (a bug or bad data). False for every
    other failure of a call (auth, 429, 5xx, not reached, outcome unknown) and for outages
    of the network or the database. (An item stopped for it is requeued by an operator; a
    report call's unreadable answer is in doubt, never a dead letter: ``reporting._after``.)"""
    if isinstance(error, CallFailed):
        return isinstance(error, (RequestRefused, UnexpectedAnswer))
    if isinstance(error, (OSError, TimeoutError)):
        return False
    if any(cls.__name__ in _OUTAGE_NAMES for cls in type(error).__mro__):
        return False
    return not type(error).__module__.startswith("httpx")
