"""In-memory state of one sandbox tenant, and the records the sandbox hands to tests."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from json.encoder import encode_basestring_ascii as _encode
from typing import Any

from optibridge.sandbox.optimove.events import ReceivedEvent

# Sandbox channel IDs (optimove-api.md section 5); production IDs are assigned per partner.
DEFAULT_CHANNELS: Mapping[int, str] = {
    502: "Call Center", 504: "Email", 505: "SMS", 506: "Push", 510: "Web Push",
    511: "In-Platform",
}


@dataclass(frozen=True)
class AudienceRow:
    """One recipient of a campaign on a channel, as GetCustomerSendDetailsByChannel serves."""

    customer_id: str
    template_id: int
    scheduled_time: datetime  # naive = UTC; an aware time is converted to UTC
    attributes: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class JournalEntry:
    """One request as the sandbox saw it. ``body``/``query`` are the parsed input: read only."""

    seq: int
    monotonic: float  # time.monotonic() at arrival: same clock as the tests' process
    wall: datetime  # aware UTC at arrival
    tenant: str | None  # None when the API key was missing or unknown
    method: str
    function: str  # canonical Function name, or the path when no Function matched
    path: str
    status: int  # the status answered (or begun, for a lost response)
    query: Mapping[str, str]
    body: Any
    fault: str | None  # the injected fault (see faults.Fault), if any
    applied: bool  # whether the request changed (or read) the tenant's state
    error: str | None = None  # the validation rule broken, for a 400

    @property
    def fault_injected(self) -> bool:
        return self.fault is not None

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "monotonic": self.monotonic,
                "wall": self.wall.isoformat(), "tenant": self.tenant, "method": self.method,
                "function": self.function, "path": self.path, "status": self.status,
                "query": dict(self.query), "body": self.body, "fault": self.fault,
                "applied": self.applied, "error": self.error}


@dataclass(frozen=True)
class ReportedInteraction:
    """One customer of one accepted UpdateCampaignInteractions call."""

    campaign_id: int
    channel_id: int
    template_id: int
    event_id: int
    recipient_group_id: int
    interaction_date: date
    customer_id: str
    app_id: str | None
    call_seq: int  # journal seq of the call that reported it
    applied_at: float = 0.0  # time.monotonic() when the call was applied

    def key(self) -> tuple[int, int, int, int, int, date, str]:
        return (self.campaign_id, self.channel_id, self.template_id, self.event_id,
                self.recipient_group_id, self.interaction_date, self.customer_id)

    def to_json(self) -> dict[str, Any]:
        return {"CampaignID": self.campaign_id, "ChannelID": self.channel_id,
                "TemplateID": self.template_id, "EventID": self.event_id,
                "RecipientGroupID": self.recipient_group_id,
                "InteractionDate": self.interaction_date.isoformat(),
                "CustomerID": self.customer_id, "AppID": self.app_id,
                "CallSeq": self.call_seq}


@dataclass(frozen=True)
class ChannelPreference:
    channel_id: int
    customer_id: str
    communication_mode: int
    app_id: str | None


@dataclass(frozen=True)
class AttributeDefinition:
    name: str
    type: str
    default_value: str | None
    callback_url: str | None


@dataclass(frozen=True)
class Notification:
    """One event the sandbox POSTed to a registered listener."""

    url: str
    payload: Mapping[str, Any]
    status: int  # 0 when the listener could not be reached


@dataclass(frozen=True)
class Listener:
    """One registered listener. GetRegisteredEventListeners' shape is unknown; optimove-api.md
    infers an array of {EventTypeID, ListenerURL, ChannelID}, and the sandbox answers that."""

    event_type_id: int
    listener_url: str
    channel_id: int | None = None


def _time_text(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


class Audience:
    """One campaign's recipients on one channel, stored by column to stay small and fast.

    A million rows cost a list of IDs, two integer arrays and one list per attribute; a page
    is built straight from slices of those columns.
    """

    def __init__(self) -> None:
        self.customer_ids: list[str] = []
        self.template_ids = array("q")
        self.time_index = array("l")
        self.times: list[str] = []
        self._time_ids: dict[str, int] = {}
        self.columns: dict[str, list[str | None]] = {}
        self._rows_of: dict[str, list[int]] | None = None  # built on first send_day

    def __len__(self) -> int:
        return len(self.customer_ids)

    def send_day(self, customer_id: str, template_id: int, not_after: date) -> date | None:
        """The day of the customer's latest send of the template on or before ``not_after``
        (the first one when every send is later); None when the customer has none."""
        if self._rows_of is None:
            self._rows_of = {}
            for index, customer in enumerate(self.customer_ids):
                self._rows_of.setdefault(customer, []).append(index)
        days = sorted(date.fromisoformat(self.times[self.time_index[i]][:10])
                      for i in self._rows_of.get(customer_id, [])
                      if self.template_ids[i] == template_id)
        if not days:
            return None
        earlier = [day for day in days if day <= not_after]
        return earlier[-1] if earlier else days[0]

    def add(self, rows: Iterable[AudienceRow]) -> int:
        self._rows_of = None
        count = 0
        for row in rows:
            self._add_row(row)
            count += 1
        return count

    def _add_row(self, row: AudienceRow) -> None:
        size = len(self.customer_ids)
        for name in row.attributes:
            if name not in self.columns:
                self.columns[name] = [None] * size
        self.customer_ids.append(str(row.customer_id))
        self.template_ids.append(int(row.template_id))
        text = _time_text(row.scheduled_time)
        index = self._time_ids.get(text)
        if index is None:
            index = self._time_ids[text] = len(self.times)
            self.times.append(text)
        self.time_index.append(index)
        for name, column in self.columns.items():
            value = row.attributes.get(name)
            column.append(None if value is None else str(value))

    def page_json(self, names: list[str], skip: int, top: int,
                  as_string: str | None = None) -> bytes:
        """One page as JSON bytes; ``as_string`` joins attributes with that delimiter.

        Built from strings only: no per-row dict or list, so a page of 10,000 rows costs a
        few milliseconds and leaves the garbage collector nothing to trace.
        """
        end = min(skip + top, len(self.customer_ids))
        if skip >= end:
            return b"[]"
        attrs = self._attribute_json(names, skip, end, as_string)
        times = self.times
        rows = [f'{{"CustomerID":{cid},"TemplateID":{tid},"ScheduledTime":"{times[ti]}",'
                f'"CustomerAttributes":{values}}}'
                for cid, tid, ti, values in zip(
                    map(_encode, self.customer_ids[skip:end]), self.template_ids[skip:end],
                    self.time_index[skip:end], attrs, strict=True)]
        return ("[" + ",".join(rows) + "]").encode()

    def _attribute_json(self, names: list[str], skip: int, end: int,
                        as_string: str | None) -> list[str]:
        """Each row's CustomerAttributes as JSON text: an array, or one delimited string."""
        empty: list[str | None] = [None] * (end - skip)
        columns = [self.columns[n][skip:end] if n in self.columns else empty for n in names]
        if as_string is not None:
            return [_encode(as_string.join("" if v is None else v for v in row))
                    for row in zip(*columns, strict=True)] if columns \
                else ['""'] * (end - skip)
        if not columns:
            return ["[]"] * (end - skip)
        encoded = [list(map(_encode_or_null, column)) for column in columns]
        return ["[" + ",".join(row) + "]" for row in zip(*encoded, strict=True)]


def _encode_or_null(value: str | None) -> str:
    return "null" if value is None else _encode(value)


@dataclass
class TenantState:
    """Everything one tenant (one Optimove client) holds in the sandbox."""

    name: str
    channels: dict[int, str] = field(default_factory=lambda: dict(DEFAULT_CHANNELS))
    audiences: dict[tuple[int, int], Audience] = field(default_factory=dict)
    listeners: dict[tuple[int, int | None], str] = field(default_factory=dict)
    templates: dict[int, dict[int, str]] = field(default_factory=dict)
    interactions: list[ReportedInteraction] = field(default_factory=list)
    by_customer: dict[str, list[ReportedInteraction]] = field(default_factory=dict)
    metrics: dict[tuple[int, int, int, int], int] = field(default_factory=dict)
    preferences: dict[tuple[int, str | None, str], int] = field(default_factory=dict)
    attributes: dict[str, AttributeDefinition] = field(default_factory=dict)
    customer_values: dict[str, dict[str, Any]] = field(default_factory=dict)
    notifications: list[Notification] = field(default_factory=list)
    events: list[ReceivedEvent] = field(default_factory=list)  # what saveEvent accepted

    def add_interaction(self, row: ReportedInteraction) -> None:
        self.interactions.append(row)
        self.by_customer.setdefault(row.customer_id, []).append(row)
