"""Settings of the second reporting backend: Optimove's External Vendors Campaign Engagement
Metrics endpoint ``saveEvent`` (optimove-api.md section 7).

Its public page stops at ``context``: the event names, the context fields, the batch limit,
the rate limit and whether it de-duplicates are not public. Each is a setting here whose
default is an assumption (README: "Reporting backends"), so a tenant's answer from
Optimove's integration team changes configuration, not code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from typing import Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

DEFAULT_URL = "https://metric-{tenant_id}.optimove.net/api/saveEvent"
MAX_AGE_DAYS = 7  # saveEvent refuses a timestamp older than this [EXTM]


class Reporting(StrEnum):
    """How a tenant's interactions reach Optimove."""

    INTERACTIONS = "interactions"  # UpdateCampaignInteractions (seed 000, "legacy")
    ENGAGEMENT_EVENTS = "engagement_events"  # saveEvent, one event per customer


class InDoubtPolicy(StrEnum):
    """What becomes of a saveEvent batch whose outcome is unknown (no read-back exists)."""

    HOLD = "hold"  # held for an operator: ``optibridge batches resolve``
    RESEND_AFTER = "resend_after"  # sent again after resend_after_seconds (a de-duplicating
    # endpoint only: ask Optimove's integration team first)


class ContextSource(StrEnum):
    """Where the value of one ``context`` field comes from."""

    CAMPAIGN_ID = "campaign_id"
    CHANNEL_ID = "channel_id"
    TEMPLATE_ID = "template_id"
    RECIPIENT_GROUP_ID = "recipient_group_id"
    SEND_TIME = "send_time"  # the send's scheduled time, "YYYY-MM-DD HH:MM:SS" UTC
    SEND_ID = "send_id"  # our send's ID (one template and send time of a campaign)
    EVENT = "event"  # our name of the event (opened, clicked, ...)
    DATE = "date"  # the interaction's day, "YYYY-MM-DD"
    EVENT_KEY = "event_key"  # "send:customer:event:day", stable: a de-duplication key
    TENANT = "tenant"  # the Optimove tenant ID


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventNames(_Strict):
    """saveEvent's ``event`` for each of our events; "" sends none of that event.

    The platform reports submitted, delivered, opened, clicked and bounced; optibridge adds
    dropped. Unsubscribed and spam have names for tenants whose platform reports them."""

    submitted: str = "sent"
    delivered: str = "delivered"
    opened: str = "opened"
    clicked: str = "clicked"
    bounced: str = "bounced"
    dropped: str = "dropped"
    unsubscribed: str = "unsubscribed"
    spam: str = "spam_report"

    @field_validator("*")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > 255 or value != value.strip():
            raise ValueError("an event name is at most 255 characters, without spaces around")
        return value

    def name_of(self, event: str) -> str | None:
        """The name sent for our ``event``; None when it is not sent."""
        name = getattr(self, event, "")
        return str(name) or None


DEFAULT_CONTEXT: dict[str, ContextSource] = {
    "campaign_id": ContextSource.CAMPAIGN_ID,
    "channel_id": ContextSource.CHANNEL_ID,
    "template_id": ContextSource.TEMPLATE_ID,
    "recipient_group_id": ContextSource.RECIPIENT_GROUP_ID,
    "send_time": ContextSource.SEND_TIME,
    "send_id": ContextSource.SEND_ID,
}


class EventsRateLimit(_Strict):
    requests: int = Field(50, ge=1, description="saveEvent calls allowed in one window")
    per_seconds: float = Field(10.0, gt=0)


class EngagementEventsConfig(_Strict):
    """``[tenants.NAME.engagement_events]``: used when ``reporting = "engagement_events"``
    (and for batches formed while it was)."""

    tenant_id: int | None = Field(None, ge=1, description="Optimove's tenant ID (support "
                                  "supplies it): the {tenant_id} of url")
    url: str = DEFAULT_URL
    token: SecretStr | None = None
    token_env: str | None = None
    events: EventNames = EventNames()
    context: dict[str, ContextSource] = Field(default_factory=lambda: dict(DEFAULT_CONTEXT))
    batch_size: int = Field(100, ge=1, le=10_000, description="events per saveEvent call")
    rate_limit: EventsRateLimit = EventsRateLimit()
    in_doubt: InDoubtPolicy = InDoubtPolicy.HOLD
    resend_after_seconds: float = Field(3600.0, gt=0)
    update_campaign_metrics: bool = Field(True, description="also send UpdateCampaignMetrics "
                                          "running totals")
    timeout_seconds: float = Field(30.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        try:
            value.format(tenant_id=1)
        except (KeyError, IndexError, ValueError):
            raise ValueError("the only placeholder is {tenant_id}") from None
        return value

    @field_validator("context")
    @classmethod
    def _context(cls, value: dict[str, ContextSource]) -> dict[str, ContextSource]:
        for name in value:
            if not name or len(name) > 255:
                raise ValueError(f"context field name {name!r}: 1 to 255 characters")
        return value

    @model_validator(mode="after")
    def _token(self, info: ValidationInfo) -> Self:
        """The token from ``token_env``; a missing one is a problem only for a tenant that
        reports by this backend (``problems``), so others need not export it."""
        if self.token is None and self.token_env:
            environ: Mapping[str, str] = (info.context or {}).get("environ", os.environ)
            found = environ.get(self.token_env)
            if found:
                object.__setattr__(self, "token", SecretStr(found))
        return self

    def endpoint(self) -> str:
        return self.url.format(tenant_id=self.tenant_id or "")

    def secret(self) -> bytes:
        assert self.token is not None
        return self.token.get_secret_value().encode()

    def problems(self) -> list[str]:
        """What keeps this section from being used (checked when a tenant reports by it)."""
        found = []
        if "{tenant_id}" in self.url and self.tenant_id is None:
            found.append("tenant_id: set it (Optimove's tenant ID, for the url's {tenant_id})")
        if self.token is None:
            found.append(f"token_env: environment variable {self.token_env} is not set or "
                         "empty" if self.token_env else
                         "token_env: set it (the variable holding the tenant's token)")
        if not any(self.events.name_of(e) for e in EventNames.model_fields):
            found.append("events: every name is empty, nothing would be sent")
        return found
