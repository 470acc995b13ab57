"""Why the service refuses something sent to it (a notification, a trigger, a callback).

The parsers and the pipeline say what was wrong and which kind of wrong it is; the HTTP
layer alone turns the kind into a status code (``service.http``)."""

from __future__ import annotations

from enum import StrEnum


class Refusal(StrEnum):
    MALFORMED = "malformed"  # not readable as what it claims to be; the reason names the field
    TOO_LARGE = "too_large"
    UNPROCESSABLE = "unprocessable"  # readable, but names what the tenant does not have
    FORBIDDEN = "forbidden"  # not signed by us


class Refused(ValueError):
    """Nothing was stored; ``reason`` says what was wrong and where."""

    def __init__(self, reason: str, refusal: Refusal = Refusal.MALFORMED) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refusal = refusal
