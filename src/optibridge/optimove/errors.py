"""Typed errors of the Optimove client: each says which call failed and why."""

from __future__ import annotations


class OptimoveError(Exception):
    """Base of every Optimove client error."""

    def __init__(self, call: str, message: str, status: int | None = None) -> None:
        super().__init__(f"Optimove {call}: {message}")
        self.call = call
        self.status = status


class BatchTooLarge(OptimoveError, ValueError):
    """Refused before sending: the batch is over the call's documented limit."""


class OptimoveRequestRejected(OptimoveError):
    """Optimove answered 400: the request's own content is wrong and sending it again as it
    is won't help. The only final answer (a report batch becomes a dead letter)."""

    def __init__(self, call: str, status: int, body: str) -> None:
        super().__init__(call, f"rejected with {status}: {body[:300]}", status)
        self.body = body


class OptimoveAuthError(OptimoveError):
    """401/403: the tenant's API key is missing, wrong, revoked or lacks the permission.
    Not final: someone fixes the key and the same call then works."""

    def __init__(self, call: str, status: int, body: str) -> None:
        super().__init__(call, f"the API key was refused ({status}): {body[:300]}", status)
        self.body = body


class OptimoveNotReached(OptimoveError):
    """Another 4xx (404, 405, 408, 413, ...) or a 400 that is a proxy's HTML page: the call
    did not reach the Function as it should (a proxy, a wrong URL). Not applied, not final:
    the same call works once the way to Optimove is fixed."""

    def __init__(self, call: str, status: int, body: str) -> None:
        super().__init__(call, f"answered {status}, the call did not reach Optimove's "
                               f"Function: {body[:300]}", status)
        self.body = body


class OptimoveRateLimited(OptimoveError):
    """429 and out of retries (or a call that is never retried)."""


class OptimoveServerError(OptimoveError):
    """5xx and out of retries."""


class OptimoveUnavailable(OptimoveError):
    """No answer: connection refused, reset or timed out, and out of retries."""


class OptimoveOutcomeUnknown(OptimoveError):
    """A non-retried call (UpdateCampaignInteractions) may or may not have been applied:
    it timed out, the connection dropped after the request was sent, or a 5xx came back.
    The caller must find out (read back) before sending it again."""


class EmptyBatch(OptimoveError, ValueError):
    """Refused before sending: a report batch with no customers is a bug upstream."""


class OptimoveUnexpectedResponse(OptimoveError):
    """A 2xx whose body the call cannot use (not JSON, a bare string, the wrong shape)."""


class UnknownShape(OptimoveUnexpectedResponse):
    """A read-back answered rows of a shape we do not know (a tenant's feature flag can
    switch GetCustomerChannelInteractions to the new format, seed 001): ``raw`` is the
    answer as it came, never misread."""

    RAW_LIMIT = 100_000

    def __init__(self, call: str, message: str, raw: str) -> None:
        super().__init__(call, message, 200)
        self.raw = raw[:self.RAW_LIMIT]


# Errors after which the same call can work later: pause and try again, never give up.
RECOVERABLE: tuple[type[OptimoveError], ...] = (
    OptimoveAuthError, OptimoveNotReached, OptimoveRateLimited, OptimoveServerError,
    OptimoveUnavailable, OptimoveOutcomeUnknown, OptimoveUnexpectedResponse)
