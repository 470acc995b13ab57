"""Typed errors of the Optimove client: each says which call failed and, by its kind
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


class OptimoveError(CallFailed):
    """Base of every Optimove client error."""

    SERVICE = "Optimove"


class _Answered(OptimoveError):
    """An error answer whose body is kept (``body``), the message showing its start."""

    WHAT = "answered"

    def __init__(self, call: str, status: int, body: str) -> None:
        super().__init__(call, self.WHAT.format(status=status) + f": {body[:300]}", status)
        self.body = body


class BatchTooLarge(OptimoveError, RequestRefused, ValueError):
    """Refused before sending: the batch is over the call's documented limit."""


class EmptyBatch(OptimoveError, RequestRefused, ValueError):
    """Refused before sending: a report batch with no customers is a bug upstream."""


class OptimoveRequestRejected(_Answered, RequestRefused):
    """Optimove answered 400: the request's own content is wrong and sending it again as it
    is won't help. The only final answer (a report batch becomes a dead letter)."""

    WHAT = "rejected with {status}"


class OptimoveAuthError(_Answered, AuthRefused):
    """401/403: the tenant's API key is missing, wrong, revoked or lacks the permission.
    Not final: someone fixes the key and the same call then works."""

    WHAT = "the API key was refused ({status})"


class OptimoveNotReached(_Answered, NotReached):
    """Another 4xx (404, 405, 408, 413, ...) or a 400 that is a proxy's HTML page: the call
    did not reach the Function as it should (a proxy, a wrong URL). Not applied, not final:
    the same call works once the way to Optimove is fixed."""

    WHAT = "answered {status}, the call did not reach Optimove's Function"


class OptimoveUnavailable(OptimoveError, NotReached):
    """No connection (refused, or not made in time) or a bad URL: nothing was sent."""


class OptimoveRateLimited(OptimoveError, RateLimited):
    """429 and out of retries (or a call that is never retried)."""


class OptimoveServerError(OptimoveError, ServerFailed):
    """5xx and out of retries."""


class OptimoveOutcomeUnknown(OptimoveError, OutcomeUnknown):
    """The call may or may not have been applied: it timed out or the connection dropped
    after the request was sent, or a 5xx came back to a call that is never retried
    (UpdateCampaignInteractions). Such a call must be read back before it is sent again."""


class OptimoveUnexpectedResponse(OptimoveError, UnexpectedAnswer):
    """A 2xx whose body the call cannot use (not JSON, a bare string, the wrong shape)."""


class UnknownShape(OptimoveUnexpectedResponse):
    """A read-back answered rows of a shape we do not know (a tenant's feature flag can
    switch GetCustomerChannelInteractions to the new format, seed 001): ``raw`` is the
    answer as it came, never misread."""

    RAW_LIMIT = 100_000

    def __init__(self, call: str, message: str, raw: str) -> None:
        super().__init__(call, message, 200)
        self.raw = raw[:self.RAW_LIMIT]
