"""A strict in-memory Optimove for tests, demos and partner rehearsals."""

from optibridge.sandbox.optimove.app import create_app
from optibridge.sandbox.optimove.faults import Fault, FaultPlan
from optibridge.sandbox.optimove.sandbox import RATE_LIMIT_BODY, OptimoveSandbox
from optibridge.sandbox.optimove.state import (
    AttributeDefinition,
    AudienceRow,
    ChannelPreference,
    JournalEntry,
    Notification,
    ReportedInteraction,
)

__all__ = [
    "RATE_LIMIT_BODY",
    "AttributeDefinition",
    "AudienceRow",
    "ChannelPreference",
    "Fault",
    "FaultPlan",
    "JournalEntry",
    "Notification",
    "OptimoveSandbox",
    "ReportedInteraction",
    "create_app",
]
