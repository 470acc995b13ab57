"""A strict in-memory Optimove for tests, demos and partner rehearsals.

Use in-process::

    sandbox = OptimoveSandbox({"key-1": "acme"}, rate_limit=(50, 10.0))
    with serving(create_app(sandbox)) as running:   # optibridge.serving
        ...  # OptimoveClient(running.url, "key-1"); sandbox.journal("acme"), ...

The app serves every Function of ``OptimoveClient`` on ``/current/{category}/{Function}``
and ``/{category}/{Function}``, and an unauthenticated admin API (bind to loopback only):

- ``POST /sandbox/{tenant}/audiences/{campaign_id}/{channel_id}``: JSON array of
  ``{CustomerID, TemplateID, ScheduledTime "YYYY-MM-DD HH:MM:SS", Attributes {name: value}}``
- ``POST /sandbox/{tenant}/channels``: ``{ChannelID, ChannelName}``
- ``POST /sandbox/{tenant}/notify``: ``{EventTypeID, CampaignID?, ChannelID?, ...extra}``
- ``GET /sandbox/{tenant}/journal`` | ``/interactions`` | ``/metrics``
- EventTypeID 14 (files on GCS): ``EngagementPublisher`` (files.py) with the GCS emulator
  (``optibridge.sandbox.gcs``)
- ``POST /metric-{tenantID}/api/saveEvent`` (or ``/api/saveEvent`` with ``Host:
  metric-{tenantID}...``): saveEvent for each ``MetricTenant`` given; ``GET
  /sandbox/{tenant}/events`` lists what it accepted
- ``PUT /sandbox/faults``: a FaultPlan as JSON (``{"error_rate": 0.1, "functions": [...]}``),
  ``null`` or an empty body clears it; ``GET /sandbox/faults`` shows it. Besides fault
  rates it holds GetCustomerChannelInteractions' undocumented semantics
  (``readback_delay_seconds``, ``readback_rows`` ``per_call|distinct``, ``readback_date``
  ``interaction|send``, ``readback_shape`` ``known|engagement_metrics``) and a revoked
  key (``auth_failure_status`` 401/403 for ``auth_failure_seconds``, on
  ``auth_failure_functions`` or every call).
"""

from optibridge.sandbox.optimove.app import create_app
from optibridge.sandbox.optimove.events import MetricTenant, ReceivedEvent
from optibridge.sandbox.optimove.faults import (
    Fault,
    FaultPlan,
    ReadbackDate,
    ReadbackRows,
    ReadbackShape,
)
from optibridge.sandbox.optimove.files import EngagementPublisher, Published
from optibridge.sandbox.optimove.sandbox import RATE_LIMIT_BODY, OptimoveSandbox
from optibridge.sandbox.optimove.state import (
    AttributeDefinition,
    AudienceRow,
    ChannelPreference,
    JournalEntry,
    Listener,
    Notification,
    ReportedInteraction,
)

__all__ = [
    "RATE_LIMIT_BODY",
    "AttributeDefinition",
    "AudienceRow",
    "ChannelPreference",
    "EngagementPublisher",
    "Fault",
    "FaultPlan",
    "JournalEntry",
    "Listener",
    "MetricTenant",
    "Notification",
    "OptimoveSandbox",
    "Published",
    "ReadbackDate",
    "ReadbackRows",
    "ReadbackShape",
    "ReceivedEvent",
    "ReportedInteraction",
    "create_app",
]
