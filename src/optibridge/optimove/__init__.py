"""Optimove: the typed client, its models and its errors."""

from optibridge.optimove.client import OptimoveClient, parse_attributes
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
