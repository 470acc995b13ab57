"""Optimove: the typed client, its models and its errors."""

from optibridge.optimove.client import OptimoveClient
from optibridge.optimove.errors import (
    BatchTooLarge,
    EmptyBatch,
    OptimoveAuthError,
    OptimoveError,
    OptimoveNotReached,
    OptimoveOutcomeUnknown,
    OptimoveRateLimited,
    OptimoveRequestRejected,
    OptimoveServerError,
    OptimoveUnavailable,
    OptimoveUnexpectedResponse,
)
from optibridge.optimove.pages import parse_attributes

__all__ = [
    "BatchTooLarge",
    "EmptyBatch",
    "OptimoveAuthError",
    "OptimoveClient",
    "OptimoveError",
    "OptimoveNotReached",
    "OptimoveOutcomeUnknown",
    "OptimoveRateLimited",
    "OptimoveRequestRejected",
    "OptimoveServerError",
    "OptimoveUnavailable",
    "OptimoveUnexpectedResponse",
    "parse_attributes",
]
