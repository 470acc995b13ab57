"""The Optimove Functions the sandbox serves: strict checks first, then the change.

Each handler validates its whole request before touching the tenant's state, so a rejected
request records nothing. Handlers run under the sandbox's lock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import unquote

from optibridge.sandbox.optimove.faults import (
    FaultPlan,
    ReadbackDate,
    ReadbackRows,
    ReadbackShape,
)
from optibridge.sandbox.optimove.state import (
    AttributeDefinition,
    ReportedInteraction,
    TenantState,
)
from optibridge.sandbox.optimove.validation import (
    Invalid,
    as_array,
    as_date,
    as_int,
    as_object,
    as_str,
    as_str_list,
    query_int,
    query_map,
)

EVENT_IDS = frozenset({2, 3, 4, 5, 6, 9})  # seed 000
METRIC_IDS = frozenset({0, 1, 2, 3, 4, 5, 6, 9})  # optimove-api.md section 0
LISTENER_EVENT_TYPES = frozenset({1, 2, 3, 4, 5, 11, 13, 14})  # [REL], [ENG]
MAX_INTERACTION_CUSTOMERS = 10_000
MAX_METRICS = 100
MAX_TEMPLATES = 100
MAX_PREFERENCE_CUSTOMERS = 50_000
MAX_ATTRIBUTES_PER_CUSTOMER = 10
MAX_API_ATTRIBUTES = 40  # [ACA]
_ATTRIBUTE_TYPE = re.compile(r"^(DECIMAL\(19,4\)|INT|BIGINT|DATE|N?VARCHAR\((\d{1,4})\))$")


@dataclass(frozen=True)
class Context:
    """What a handler needs beyond the request: the sandbox's settings for this call."""

    seq: int
    max_top: int
    max_attribute_customers: int
    attributes_as_string: bool
    plan: FaultPlan | None = None  # its readback_* settings shape GetCustomerChannelInteractions
    now: float = 0.0  # time.monotonic() at the request's arrival


@dataclass(frozen=True)
class Request:
    query: list[tuple[str, str]]
    body: Any  # parsed JSON, or None for a GET


Handler = Callable[[TenantState, Request, Context], Any]


@dataclass(frozen=True)
class Function:
    name: str
    category: str
    method: str
    handle: Handler


def _no_query(request: Request) -> None:
    query_map(request.query, set())


def _known_channel(state: TenantState, channel_id: int, field: str) -> int:
    if channel_id not in state.channels:
        raise Invalid(field, f"{channel_id} is not an execution channel of this tenant")
    return channel_id


def _channel_query(state: TenantState, query: Mapping[str, str]) -> int:
    return _known_channel(state, query_int(query, "ChannelID", required=True), "ChannelID")


# ----------------------------------------------------------------------- event listeners

def _listener_url(value: Any) -> str:
    url = as_str(value, "ListenerURL", max_length=2_000)
    # The old docs' sample sent it URL-encoded ("http%3A%2F%2F..."); plain works too.
    if re.match(r"^https?%3A", url, re.IGNORECASE):
        url = unquote(url)
    if not re.match(r"^https?://[^\s/]+", url):
        raise Invalid("ListenerURL", "must be an http:// or https:// URL")
    return url


def _listener_key(state: TenantState, data: dict[str, Any]) -> tuple[int, int | None]:
    event_type = as_int(data["EventTypeID"], "EventTypeID", allowed=LISTENER_EVENT_TYPES)
    channel = data.get("ChannelID")
    if channel is None:
        return event_type, None
    if event_type == 5:
        raise Invalid("ChannelID", "EventTypeID 5 must be registered without a ChannelID")
    return event_type, _known_channel(state, as_int(channel, "ChannelID"), "ChannelID")


def register_listener(state: TenantState, request: Request, _: Context) -> None:
    _no_query(request)
    data = as_object(request.body, "body", {"EventTypeID", "ListenerURL", "ChannelID"},
                     {"EventTypeID", "ListenerURL"})
    key = _listener_key(state, data)
    url = _listener_url(data["ListenerURL"])
    state.listeners[key] = url  # replaces the listener of the same (EventTypeID, ChannelID)


def unregister_listener(state: TenantState, request: Request, _: Context) -> None:
    _no_query(request)
    data = as_object(request.body, "body", {"EventTypeID", "ChannelID"}, {"EventTypeID"})
    state.listeners.pop(_listener_key(state, data), None)


def get_listeners(state: TenantState, request: Request, _: Context) -> Any:
    # Response shape not public; assumed [{"EventTypeID":13,"ListenerURL":"...","ChannelID":504}].
    _no_query(request)
    return [{"EventTypeID": event, "ListenerURL": url, "ChannelID": channel}
            for (event, channel), url in sorted(state.listeners.items(),
                                                key=lambda item: (item[0][0], item[0][1] or 0))]


# ------------------------------------------------------------------------- audience pull

def send_details(state: TenantState, request: Request, context: Context) -> bytes:
    query = query_map(request.query, {"CampaignID", "ChannelID", "CustomerAttributes",
                                      "CustomerAttributesDelimiter", "$top", "$skip"})
    campaign = query_int(query, "CampaignID", required=True)
    channel = _channel_query(state, query)
    top = query_int(query, "$top", required=False, default=context.max_top, low=1,
                    high=context.max_top)
    skip = query_int(query, "$skip", required=False, default=0, high=2**62)
    delimiter = query.get("CustomerAttributesDelimiter", ";")
    if delimiter not in (";", ","):
        raise Invalid("CustomerAttributesDelimiter", "must be ';' or ','")
    raw_names = query.get("CustomerAttributes", "")
    names = raw_names.split(delimiter) if raw_names else []
    if any(not name.strip() for name in names):
        raise Invalid("CustomerAttributes", f"attribute names separated by {delimiter!r}, "
                                            "none empty")
    audience = state.audiences.get((campaign, channel))
    if audience is None:  # an unknown campaign answers an empty list
        return b"[]"
    joined = delimiter if context.attributes_as_string else None
    return audience.page_json(names, skip, top, joined)


# ----------------------------------------------------------------------------- templates

def add_templates(state: TenantState, request: Request, _: Context) -> None:
    channel = _channel_query(state, query_map(request.query, {"ChannelID"}))
    items = as_array(request.body, "body", MAX_TEMPLATES)
    found: dict[int, str] = {}
    for index, item in enumerate(items):
        where = f"[{index}]"
        data = as_object(item, where, {"TemplateID", "TemplateName", "AppID"},
                         {"TemplateID", "TemplateName"})
        template = as_int(data["TemplateID"], f"{where}.TemplateID")
        found[template] = as_str(data["TemplateName"], f"{where}.TemplateName", max_length=500)
        if data.get("AppID") is not None:
            as_str(data["AppID"], f"{where}.AppID")
    state.templates.setdefault(channel, {}).update(found)


def delete_templates(state: TenantState, request: Request, _: Context) -> None:
    _no_query(request)
    items = as_array(request.body, "body", MAX_TEMPLATES)
    doomed: list[tuple[int, int]] = []
    for index, item in enumerate(items):
        where = f"[{index}]"
        data = as_object(item, where, {"ChannelID", "TemplateID"}, {"ChannelID", "TemplateID"})
        channel = _known_channel(state, as_int(data["ChannelID"], f"{where}.ChannelID"),
                                 f"{where}.ChannelID")
        doomed.append((channel, as_int(data["TemplateID"], f"{where}.TemplateID")))
    for channel, template in doomed:
        state.templates.get(channel, {}).pop(template, None)


def get_templates(state: TenantState, request: Request, _: Context) -> Any:
    channel = _channel_query(state, query_map(request.query, {"ChannelID"}))
    return [{"TemplateID": tid, "TemplateName": name}
            for tid, name in sorted(state.templates.get(channel, {}).items())]


# ----------------------------------------------------------------------------- reporting

def update_metrics(state: TenantState, request: Request, _: Context) -> None:
    _no_query(request)
    items = as_array(request.body, "body", MAX_METRICS)
    found: dict[tuple[int, int, int, int], int] = {}
    fields = {"ChannelID", "CampaignID", "TemplateID", "MetricID", "MetricValue"}
    for index, item in enumerate(items):
        where = f"[{index}]"
        data = as_object(item, where, fields, fields)
        channel = _known_channel(state, as_int(data["ChannelID"], f"{where}.ChannelID"),
                                 f"{where}.ChannelID")
        key = (as_int(data["CampaignID"], f"{where}.CampaignID"), channel,
               as_int(data["TemplateID"], f"{where}.TemplateID"),
               as_int(data["MetricID"], f"{where}.MetricID", allowed=METRIC_IDS))
        found[key] = as_int(data["MetricValue"], f"{where}.MetricValue", high=2**63 - 1)
    state.metrics.update(found)  # running totals: the latest value wins


_INTERACTION_FIELDS = {"CampaignID", "ChannelID", "InteractionDate", "TemplateID", "EventID",
                       "RecipientGroupID", "CustomerIDs", "AppID"}


def update_interactions(state: TenantState, request: Request, context: Context) -> None:
    _no_query(request)
    data = as_object(request.body, "body", _INTERACTION_FIELDS,
                     _INTERACTION_FIELDS - {"RecipientGroupID", "AppID"})
    campaign = as_int(data["CampaignID"], "CampaignID")
    channel = _known_channel(state, as_int(data["ChannelID"], "ChannelID"), "ChannelID")
    when = as_date(data["InteractionDate"], "InteractionDate")
    template = as_int(data["TemplateID"], "TemplateID")
    event = as_int(data["EventID"], "EventID", allowed=EVENT_IDS)
    group_raw = data.get("RecipientGroupID")
    group = 1 if group_raw is None else as_int(group_raw, "RecipientGroupID", high=99)
    app = None if data.get("AppID") is None else as_str(data["AppID"], "AppID")
    customers = as_str_list(data["CustomerIDs"], "CustomerIDs", MAX_INTERACTION_CUSTOMERS)
    # Optimove adds up repeated calls (seed 000): every accepted call appends its rows.
    for customer in customers:
        state.add_interaction(ReportedInteraction(
            campaign, channel, template, event, group, when, customer, app, context.seq,
            context.now))


def action_id(campaign_id: int) -> int:
    """A made-up but stable ActionID per campaign (Optimove's real one is the action serial)."""
    return 100_000 + campaign_id


def _shown_date(state: TenantState, row: ReportedInteraction, by: ReadbackDate) -> date:
    """The date a read-back filters on and shows: the interaction's, or the send's."""
    if by is ReadbackDate.INTERACTION:
        return row.interaction_date
    audience = state.audiences.get((row.campaign_id, row.channel_id))
    sent = None if audience is None else audience.send_day(
        row.customer_id, row.template_id, row.interaction_date)
    return row.interaction_date if sent is None else sent


METRIC_NAMES = {2: "opened", 3: "clicked", 4: "unsubscribed", 5: "dropped", 6: "spam",
                9: "bounced"}


def _new_format(item: dict[str, Any]) -> dict[str, Any]:
    """A row as GetCampaignEngagementMetrics might answer it (its schema is not public)."""
    return {"engagementDate": item["Date"], "campaignId": item["CampaignID"],
            "channelId": item["ChannelID"], "templateId": item["TemplateID"],
            "metric": METRIC_NAMES.get(item["EventID"], str(item["EventID"])),
            "recipientGroup": item["RecipientGroupID"]}


def engagement_metrics(state: TenantState, request: Request, context: Context) -> Any:
    """GetCampaignEngagementMetrics at the path the sandbox guesses: the new format."""
    return [_new_format(item) for item in channel_interactions(state, request, context)]


def channel_interactions(state: TenantState, request: Request, context: Context) -> Any:
    query = query_map(request.query, {"CustomerID", "StartDate", "EndDate", "ChannelID"})
    customer = as_str(query.get("CustomerID"), "CustomerID")
    start: date = as_date(query.get("StartDate"), "StartDate")
    end: date = as_date(query.get("EndDate"), "EndDate")
    if end < start:
        raise Invalid("EndDate", "must not be before StartDate")
    channel = (query_int(query, "ChannelID", required=True)
               if query.get("ChannelID") not in (None, "") else None)
    plan = context.plan or FaultPlan()
    shown: list[dict[str, Any]] = []
    for row in state.by_customer.get(customer, []):
        if context.now - row.applied_at < plan.readback_delay_seconds:
            continue  # applied, not visible yet
        day = _shown_date(state, row, plan.readback_date)
        if not start <= day <= end or (channel is not None and row.channel_id != channel):
            continue
        item = {"Date": day.isoformat(), "CampaignID": row.campaign_id,
                "RecipientGroupID": row.recipient_group_id,
                "ActionID": action_id(row.campaign_id), "ChannelID": row.channel_id,
                "TemplateID": row.template_id, "EventID": row.event_id}
        if plan.readback_rows is ReadbackRows.DISTINCT and item in shown:
            continue
        shown.append(item)
    if plan.readback_shape is ReadbackShape.ENGAGEMENT_METRICS:
        return [_new_format(item) for item in shown]
    return shown


# ------------------------------------------------------------------------- subscriptions

def set_preference(state: TenantState, request: Request, _: Context) -> None:
    _no_query(request)
    data = as_object(request.body, "body", {"ChannelID", "CustomerIDs", "CommunicationMode",
                                            "AppID"},
                     {"ChannelID", "CustomerIDs", "CommunicationMode"})
    channel = _known_channel(state, as_int(data["ChannelID"], "ChannelID"), "ChannelID")
    mode = as_int(data["CommunicationMode"], "CommunicationMode", high=255)
    app = None if data.get("AppID") is None else as_str(data["AppID"], "AppID")
    customers = as_str_list(data["CustomerIDs"], "CustomerIDs", MAX_PREFERENCE_CUSTOMERS)
    for customer in customers:
        state.preferences[(channel, app, customer)] = mode


def _check_default(kind: str, value: str, length: str | None) -> None:
    """The default value must fit the attribute's type."""
    try:
        if kind in ("INT", "BIGINT"):
            number = int(value)
            bound = 2**31 if kind == "INT" else 2**63
            if not -bound <= number < bound:
                raise ValueError
        elif kind.startswith("DECIMAL"):
            if not re.match(r"^-?\d{1,15}(\.\d{1,4})?$", value):
                raise ValueError
        elif kind == "DATE":
            as_date(value, "DefaultValue")
        elif length is not None and len(value) > int(length):
            raise ValueError
    except (ValueError, Invalid):
        raise Invalid("DefaultValue", f"does not fit the type {kind}") from None


def add_attribute(state: TenantState, request: Request, _: Context) -> None:
    _no_query(request)
    data = as_object(request.body, "body", {"Name", "Type", "DefaultValue", "CallbackURL"},
                     {"Name", "Type"})
    name = as_str(data["Name"], "Name", max_length=128)
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_ ]*$", name):
        raise Invalid("Name", "letters, digits, '_' and spaces, not starting with a digit")
    kind = as_str(data["Type"], "Type", max_length=20).upper()
    match = _ATTRIBUTE_TYPE.match(kind)
    if match is None or (match.group(2) is not None and not 1 <= int(match.group(2)) <= 4000):
        raise Invalid("Type", "one of DECIMAL(19,4), INT, BIGINT, DATE, VARCHAR(X), NVARCHAR(X) "
                              "with X in 1..4000")
    default = data.get("DefaultValue")
    if default is not None:
        if not isinstance(default, str):
            raise Invalid("DefaultValue", "must be a string")
        _check_default(kind, default, match.group(2))
    callback = None if data.get("CallbackURL") is None else as_str(data["CallbackURL"],
                                                                   "CallbackURL")
    existing = state.attributes.get(name)
    if existing is not None and existing.type != kind:
        raise Invalid("Name", f"already defined with type {existing.type}")
    if existing is None and len(state.attributes) >= MAX_API_ATTRIBUTES:
        raise Invalid("Name", f"at most {MAX_API_ATTRIBUTES} attributes can be added by API")
    state.attributes[name] = AttributeDefinition(name, kind, default, callback)


def update_attributes(state: TenantState, request: Request, context: Context) -> None:
    _no_query(request)
    data = as_object(request.body, "body", {"CustomerNewAttributesValuesList", "CallbackURL"},
                     {"CustomerNewAttributesValuesList"})
    if data.get("CallbackURL") is not None:
        as_str(data["CallbackURL"], "CallbackURL")
    field = "CustomerNewAttributesValuesList"
    items = as_array(data[field], field, context.max_attribute_customers)
    updates: list[tuple[str, dict[str, Any]]] = []
    for index, item in enumerate(items):
        where = f"{field}[{index}]"
        entry = as_object(item, where, {"CustomerID", "Attributes"}, {"CustomerID", "Attributes"})
        customer = as_str(entry["CustomerID"], f"{where}.CustomerID", max_length=200)
        values: dict[str, Any] = {}
        pairs = as_array(entry["Attributes"], f"{where}.Attributes", MAX_ATTRIBUTES_PER_CUSTOMER)
        for number, pair in enumerate(pairs):
            at = f"{where}.Attributes[{number}]"
            attr = as_object(pair, at, {"RealFieldName", "Value"}, {"RealFieldName"})
            if "Value" not in attr:
                raise Invalid(f"{at}.Value", "is required (null is allowed)")
            value = attr["Value"]
            if isinstance(value, dict | list):
                raise Invalid(f"{at}.Value", "must be a string, number, boolean or null")
            values[as_str(attr["RealFieldName"], f"{at}.RealFieldName", max_length=128)] = value
        updates.append((customer, values))
    for customer, values in updates:
        state.customer_values.setdefault(customer, {}).update(values)


def execution_channels(state: TenantState, request: Request, _: Context) -> Any:
    _no_query(request)
    return [{"ChannelID": cid, "ChannelName": name} for cid, name in sorted(state.channels.items())]


FUNCTIONS: dict[str, Function] = {f.name.lower(): f for f in (
    Function("RegisterEventListener", "general", "POST", register_listener),
    Function("UnregisterEventListener", "general", "POST", unregister_listener),
    Function("GetRegisteredEventListeners", "general", "GET", get_listeners),
    Function("GetCustomerSendDetailsByChannel", "customers", "GET", send_details),
    Function("AddChannelTemplates", "integrations", "POST", add_templates),
    Function("DeleteChannelTemplates", "integrations", "POST", delete_templates),
    Function("GetChannelTemplates", "integrations", "GET", get_templates),
    Function("UpdateCampaignMetrics", "integrations", "POST", update_metrics),
    Function("UpdateCampaignInteractions", "integrations", "POST", update_interactions),
    Function("GetCustomerChannelInteractions", "customers", "GET", channel_interactions),
    Function("GetCampaignEngagementMetrics", "customers", "GET", engagement_metrics),
    Function("SetCustomerChannelPreference", "integrations", "POST", set_preference),
    Function("AddCustomerAttribute", "customers", "POST", add_attribute),
    Function("UpdateCustomerAttributes", "customers", "POST", update_attributes),
    Function("GetExecutionChannels", "actions", "GET", execution_channels),
)}


def resolve(path: str) -> Function | None:
    """The Function at ``/current/{category}/{Function}`` or ``/{category}/{Function}``."""
    parts = [part for part in path.split("/") if part]
    if len(parts) == 3 and parts[0].lower() == "current":
        parts = parts[1:]
    if len(parts) != 2:
        return None
    function = FUNCTIONS.get(parts[1].lower())
    if function is None or function.category != parts[0].lower():
        return None
    return function
