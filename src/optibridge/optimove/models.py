"""Typed requests and responses of the Optimove calls the connector uses.

Field names follow Optimove's PascalCase on the wire (aliases); Python code uses snake_case.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from optibridge.domain import Event

# Limits from optimove-api.md section 0 (enforced by the client before sending).
MAX_INTERACTION_CUSTOMERS = 10_000
MAX_METRICS_PER_CALL = 100
MAX_TEMPLATES_PER_CALL = 100
MAX_PREFERENCE_CUSTOMERS = 50_000
MAX_ATTRIBUTE_CUSTOMERS = 10_000  # seed 002; the tenant config defaults to the 1,000 of the docs
MAX_ATTRIBUTES_PER_CUSTOMER = 10


class EventType(IntEnum):
    """RegisterEventListener EventTypeIDs the connector listens to."""

    CAMPAIGN_PROCESSED = 1
    CAMPAIGN_CANCELED = 4
    TRIGGERED = 11
    CHANNEL_EXECUTED = 13
    ENGAGEMENT_FILES = 14  # the UI-registered webhook: audience as Avro files on GCS


class InteractionEvent(IntEnum):
    """UpdateCampaignInteractions EventIDs (seed 000)."""

    OPENED = 2
    CLICKED = 3
    UNSUBSCRIBED = 4
    DROPPED = 5
    SPAM_REPORT = 6
    BOUNCED = 9


class Metric(IntEnum):
    """UpdateCampaignMetrics MetricIDs (optimove-api.md section 0)."""

    SENT = 0
    DELIVERED = 1
    OPENED = 2
    CLICKED = 3
    UNSUBSCRIBED = 4
    DROPPED = 5
    SPAM = 6
    BOUNCED = 9


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")


class EventListener(_Wire):
    """One registered listener. The response shape of GetRegisteredEventListeners is not
    public: we assume an array of these objects (the sandbox answers the same)."""

    event_type_id: int = Field(alias="EventTypeID")
    listener_url: str = Field(alias="ListenerURL")
    channel_id: int | None = Field(None, alias="ChannelID")


class CustomerSendDetail(NamedTuple):
    """One row of GetCustomerSendDetailsByChannel; attributes in the order asked for.

    A plain tuple, not a model: a page holds 10,000 of them and the page is validated as a
    whole when it is read (``OptimoveClient.get_customer_send_details``).
    """

    customer_id: str
    template_id: int
    scheduled_time: dt.datetime  # naive, UTC (seed 002)
    attributes: tuple[str | None, ...] = ()


@dataclass(frozen=True, slots=True)
class SendDetailsPage:
    skip: int
    rows: Sequence[CustomerSendDetail]


class ChannelTemplate(_Wire):
    template_id: int = Field(alias="TemplateID")
    template_name: str = Field(alias="TemplateName", min_length=1)


class CampaignMetric(_Wire):
    channel_id: int = Field(alias="ChannelID")
    campaign_id: int = Field(alias="CampaignID")
    template_id: int = Field(alias="TemplateID")
    metric_id: Metric = Field(alias="MetricID")
    metric_value: int = Field(alias="MetricValue", ge=0)


class CampaignInteractions(_Wire):
    """One UpdateCampaignInteractions call: one event for up to 10,000 customers."""

    campaign_id: int = Field(alias="CampaignID")
    channel_id: int = Field(alias="ChannelID")
    interaction_date: dt.date = Field(alias="InteractionDate")
    template_id: int = Field(alias="TemplateID")
    event_id: InteractionEvent = Field(alias="EventID")
    recipient_group_id: int = Field(1, alias="RecipientGroupID")
    customer_ids: tuple[str, ...] = Field(alias="CustomerIDs")
    app_id: str | None = Field(None, alias="AppID")


class ChannelInteraction(_Wire):
    """One row of GetCustomerChannelInteractions (seed 001)."""

    date: dt.date = Field(alias="Date")
    campaign_id: int = Field(alias="CampaignID")
    recipient_group_id: int = Field(alias="RecipientGroupID")
    action_id: int | None = Field(None, alias="ActionID")
    channel_id: int = Field(alias="ChannelID")
    template_id: int = Field(alias="TemplateID")
    event_id: int = Field(alias="EventID")


class AttributeValue(_Wire):
    real_field_name: str = Field(alias="RealFieldName")
    value: str | int | float | bool | None = Field(alias="Value")


class CustomerAttributesUpdate(_Wire):
    customer_id: str = Field(alias="CustomerID")
    attributes: tuple[AttributeValue, ...] = Field(alias="Attributes")


class ExecutionChannel(_Wire):
    channel_id: int = Field(alias="ChannelID")
    channel_name: str = Field(alias="ChannelName")


# Which events UpdateCampaignInteractions takes, and as which EventID (seed 000).
REPORTED_AS: Mapping[Event, InteractionEvent] = {
    Event.OPENED: InteractionEvent.OPENED,
    Event.CLICKED: InteractionEvent.CLICKED,
    Event.BOUNCED: InteractionEvent.BOUNCED,
    Event.DROPPED: InteractionEvent.DROPPED,
}

# UpdateCampaignMetrics running totals: Sent counts submitted messages.
METRIC_OF: Mapping[Event, Metric] = {
    Event.SUBMITTED: Metric.SENT,
    Event.DELIVERED: Metric.DELIVERED,
    Event.OPENED: Metric.OPENED,
    Event.CLICKED: Metric.CLICKED,
    Event.BOUNCED: Metric.BOUNCED,
    Event.DROPPED: Metric.DROPPED,
}
