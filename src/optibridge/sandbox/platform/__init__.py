"""A strict sandbox of the execution platform (platform-api.md) with a seeded sender.

Run it with ``optibridge.serving.serving(create_app(sandbox))``; drive and inspect it from
another thread through ``PlatformSandbox``'s methods or the ``/sandbox/`` admin API.
"""

from optibridge.sandbox.platform.app import create_app
from optibridge.sandbox.platform.contract import Channel, Event, State
from optibridge.sandbox.platform.core import PlatformSandbox
from optibridge.sandbox.platform.model import (
    CallbackAttempt,
    EventRates,
    PlatformFaults,
    SandboxCampaign,
    SandboxContact,
    SandboxPayload,
)
from optibridge.sandbox.platform.resources import DOMAINS
from optibridge.sandbox.platform.sender import render

__all__ = [
    "DOMAINS",
    "CallbackAttempt",
    "Channel",
    "Event",
    "EventRates",
    "PlatformFaults",
    "PlatformSandbox",
    "SandboxCampaign",
    "SandboxContact",
    "SandboxPayload",
    "State",
    "create_app",
    "render",
]
