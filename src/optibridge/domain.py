"""Domain records shared by the pipeline and the store (no HTTP, no SQL here)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, NamedTuple, NewType

import orjson


class ChannelType(StrEnum):
    EMAIL = "email"
    SMS = "sms"


class Event(StrEnum):
    """What happened to one recipient: the platform's five events, plus our own Dropped."""

    SUBMITTED = "submitted"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    OPENED = "opened"
    CLICKED = "clicked"
    DROPPED = "dropped"


class CampaignStage(StrEnum):
    """How far our campaign (one Optimove campaign on one channel) has come: its audience
    being pulled, pulled, or cancelled by Optimove. The platform's campaign has its own
    ``platform.api.CampaignState``."""

    PULLING = "pulling"
    PULLED = "pulled"
    CANCELLED = "cancelled"


class SendState(StrEnum):
    """How far a send's execution has come; each step is recorded before the next."""

    NEW = "new"
    LISTED = "listed"  # the platform's contact list exists
    UPLOADED = "uploaded"  # every recipient with an address is in the list
    CREATED = "created"  # the platform campaign exists, DRAFT
    PAYLOAD = "payload"  # the template is attached
    READY = "ready"  # READY on the platform: it will send
    DONE = "done"
    ERROR = "error"
    CANCELLED = "cancelled"


FINAL_SEND_STATES = frozenset({SendState.DONE, SendState.ERROR, SendState.CANCELLED})


class BatchState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # the call is (or was, if we crashed) under way
    SENT = "sent"
    IN_DOUBT = "in_doubt"  # the call's outcome is unknown: read back before re-sending
    # Optimove refused the batch's own content (a 400): final until an operator requeues
    # it; the answer is kept. Every other error leaves the batch pending or in doubt.
    DEAD_LETTER = "dead_letter"
    # saveEvent takes no event older than 7 days: such events are set aside, never sent.
    EXPIRED = "expired"


class Backend(StrEnum):
    """Which call a report batch is for; a batch keeps it, whatever the tenant says later."""

    INTERACTIONS = "interactions"  # UpdateCampaignInteractions
    ENGAGEMENT_EVENTS = "engagement_events"  # saveEvent


class WorkKind(StrEnum):
    """The units of background work that fail alone (one failure row per item)."""

    NOTIFICATION = "notification"  # an Optimove listener call, by its ID
    CANCELLATION = "cancellation"  # an EventTypeID 4 notification, by its ID
    PULL = "pull"  # a campaign's audience pull, by campaign/channel
    SEND = "send"  # a send's execution, by the send's ID
    METRICS = "metrics"  # a campaign's UpdateCampaignMetrics chunk, by campaign/channel
    FOLLOW = "follow"  # following a READY send to its end (and its Dropped), by send ID


class Made(StrEnum):
    """What one create on the platform makes (one row per create, recorded before it)."""

    LIST = "list"  # a send's contact list
    CAMPAIGN = "campaign"  # a send's platform campaign (DRAFT when made)


class CreateState(StrEnum):
    """Where one create on the platform stands. A create whose answer was lost may have
    made an object nobody knows of: a leftover, found and deleted by the sweep."""

    ASKING = "asking"  # recorded; the create is (or was, if we crashed) under way
    MADE = "made"  # answered: the send holds what it made
    LOST = "lost"  # no usable answer: it may have made an object; to be looked for
    ORPHAN = "orphan"  # made, known by its ID, and not the send's: to be deleted
    DELETED = "deleted"  # an orphan, deleted
    ABSENT = "absent"  # looked for where it must be and not found: it made nothing
    HELD = "held"  # cannot be found from here: an operator looks for it by its name


class WorkState(StrEnum):
    RETRYING = "retrying"  # failed; tried again after its back-off
    STOPPED = "stopped"  # refused too often: waits for an operator's requeue


@dataclass(frozen=True)
class NotificationRecord:
    id: int
    tenant: str
    event_type: int
    campaign_id: int | None
    channel_id: int | None
    payload: str


@dataclass(frozen=True)
class CampaignRecord:
    id: int
    tenant: str
    campaign_id: int
    channel_id: int
    stage: CampaignStage
    next_skip: int
    pulled: int
    triggered: bool = False


@dataclass(frozen=True)
class EngagementRecord:
    campaign_pk: int
    bucket: str
    customers_folder: str
    metadata_path: str
    decryption_key: str = field(repr=False)
    engagement_id: int | None
    metadata_json: str | None
    next_file: int
    file_start: int
    failures: int
    retry_at: float | None


class AudienceEntry(NamedTuple):
    """One customer of a campaign as the audience pull found them (a tuple: a pull makes a
    million of them, and a decoding process sends them back 10,000 at a time)."""

    customer_id: str
    template_id: int
    scheduled_time: dt.datetime  # naive UTC
    address: str | None
    fields: FieldsJson | None = None  # encoded where the entry is made (``fields_json``)


@dataclass(slots=True)
class AudiencePage:
    """A page of audience entries as columns, one list per field of ``AudienceEntry``.

    How a decoding process sends a page back: lists of strings pickle in C both ways,
    where 10,000 named tuples cost a Python call each way (a quarter of the decoding
    process's time, and a tenth of the service's main thread, in the 1,000,000-customer
    pull)."""

    customer_ids: list[str] = field(default_factory=list)
    template_ids: list[int] = field(default_factory=list)
    scheduled_times: list[dt.datetime] = field(default_factory=list)
    addresses: list[str | None] = field(default_factory=list)
    fields: list[FieldsJson | None] = field(default_factory=list)

    @classmethod
    def of(cls, entries: Iterable[AudienceEntry]) -> AudiencePage:
        page = cls()
        for entry in entries:
            page.customer_ids.append(entry.customer_id)
            page.template_ids.append(entry.template_id)
            page.scheduled_times.append(entry.scheduled_time)
            page.addresses.append(entry.address)
            page.fields.append(entry.fields)
        return page

    def __len__(self) -> int:
        return len(self.customer_ids)

    def __iter__(self) -> Iterator[AudienceEntry]:
        return map(AudienceEntry._make, zip(
            self.customer_ids, self.template_ids, self.scheduled_times, self.addresses,
            self.fields, strict=True))

    def send_keys(self) -> Iterator[tuple[int, dt.datetime]]:
        """Each entry's send as (template, scheduled time)."""
        return zip(self.template_ids, self.scheduled_times, strict=True)


@dataclass(frozen=True)
class SendRecord:
    id: int
    campaign_pk: int
    tenant: str
    campaign_id: int
    channel_id: int
    channel_type: ChannelType
    template_id: int
    scheduled_time: dt.datetime
    state: SendState
    recipients: int
    list_id: int | None
    uploaded_through: int
    platform_campaign_id: int | None
    platform_state: str | None
    ready_at: float | None
    checked_at: float | None
    finished_at: float | None = None


@dataclass(frozen=True)
class CreateRecord:
    id: int
    tenant: str
    send_id: int
    made: Made
    name: str
    state: CreateState
    platform_id: int | None
    asked_at: float
    answered_at: float | None
    note: str | None


# A recipient's personalization fields as the text of one JSON object of strings, the way
# the store keeps them: an upload passes it on as it is, never decoding and encoding again.
FieldsJson = NewType("FieldsJson", str)


def fields_json(fields: Mapping[str, str]) -> FieldsJson | None:
    """The fields as the store keeps them (None: no fields)."""
    return FieldsJson(orjson.dumps(fields).decode()) if fields else None


class RecipientRow(NamedTuple):
    """One recipient to upload (a tuple: execution reads 10,000 at a time)."""

    id: int
    customer_id: str
    address: str | None
    fields: FieldsJson


@dataclass(frozen=True)
class InboxItem:
    """A verified callback to store before answering it."""

    send_id: int
    event: Event
    event_time: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class ReportBatchRecord:
    id: int
    tenant: str
    campaign_id: int
    channel_id: int
    template_id: int
    event_id: int
    recipient_group_id: int
    interaction_date: dt.date
    size: int
    state: BatchState
    attempts: int
    updated_at: float
    epoch: int | None = None  # the lease epoch of the last state change (None: an operator)
    backend: Backend = Backend.INTERACTIONS


@dataclass(frozen=True)
class MetricTotal:
    campaign_id: int
    channel_id: int
    template_id: int
    metric_id: int
    value: int
    reported_value: int | None
    reported_at: float | None


@dataclass(frozen=True, order=True)
class ReportedRow:
    """One customer in one sent UpdateCampaignInteractions batch."""

    date: dt.date
    campaign_id: int
    channel_id: int
    template_id: int
    event_id: int
    recipient_group_id: int


@dataclass(frozen=True)
class InDoubtRead:
    """Where one in-doubt batch's read-backs stand."""

    batch_id: int
    in_doubt_since: float
    next_read_at: float
    reads: int
    absent: int
    problem: str | None


@dataclass(frozen=True)
class LagState:
    """A tenant's read-back knowledge (all None until something was learned)."""

    tenant: str
    lag_seconds: float | None = None
    learned_at: float | None = None
    samples: int = 0
    sample_batch_id: int | None = None
    sample_customer: str | None = None
    sample_since: float | None = None
    sample_next_at: float | None = None
    unusable: str | None = None
    unusable_kind: str | None = None  # "lag": re-learn it first; else any good read clears
    unusable_since: float | None = None
    retry_at: float | None = None

    def but(self, **changes: Any) -> LagState:
        return replace(self, **changes)


@dataclass(frozen=True)
class BatchEventRow:
    """One event of a saveEvent batch, with what its context may need."""

    customer_id: str
    stored_at: float  # when optibridge stored it: the event's timestamp
    send_id: int
    scheduled_time: dt.datetime  # naive UTC


@dataclass(frozen=True)
class Expired:
    """Events set aside as too old for saveEvent."""

    batch_id: int
    campaign_id: int
    event: Event
    day: dt.date
    count: int


@dataclass(frozen=True)
class NewTrigger:
    """A validated trigger, ready to be recorded."""

    tenant: str
    campaign_id: int
    channel_id: int
    template_id: int
    customer_id: str
    address: str | None
    fields: Mapping[str, str]
    payload: str
    action_id: int | None = None
    trigger_name: str | None = None
    fingerprint: str | None = None  # equal for identical triggers (see ``repeat_of``)


@dataclass(frozen=True)
class TriggerGroup:
    """Pending triggers of one (campaign, channel, template)."""

    campaign_id: int
    channel_id: int
    template_id: int
    count: int
    oldest: float


@dataclass(frozen=True)
class WorkRecord:
    tenant: str
    kind: WorkKind
    item: str
    state: WorkState
    attempts: int
    refusals: int
    last_error: str
    first_failed_at: float
    failed_at: float
    next_at: float

    def waiting(self, now: float) -> bool:
        """Not to be tried now: stopped, or backing off."""
        return self.state == WorkState.STOPPED or self.next_at > now


@dataclass(frozen=True)
class WorkRetry:
    """Back-off doubling from ``first`` up to ``longest``; stopped after ``max_refusals``
    failures that are about the item itself (other failures never stop it)."""

    first: float = 2.0
    longest: float = 600.0
    max_refusals: int = 6

    def delay(self, attempts: int) -> float:
        return float(min(self.longest, self.first * 2.0 ** min(max(attempts - 1, 0), 30)))


@dataclass(frozen=True)
class LeaseGrant:
    """The answer to taking or renewing a lease."""

    held: bool
    previous: str | None = None  # the holder it was taken over from
    epoch: int = 0  # grows by one each time the lease changes hands
    remaining: float = 0.0  # seconds the lease has left, by the database's clock


@dataclass(frozen=True)
class LeaseClaim:
    """Whose lease a call is made under: it goes out only while that lease is current."""

    tenant: str
    holder: str
    epoch: int
