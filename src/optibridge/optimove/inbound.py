"""What Optimove sends us, parsed: the scheduled-campaign notifications (seed 002, flow 3)
and EventTypeID 11's trigger (seed 002, triggered flow). As ``platform.callbacks`` reads
the platform's callbacks, this module reads Optimove's calls; it refuses what it cannot use
with a reason naming the field (``Refused``), and knows nothing of tenants or storage.

EventTypeID 11's payload is not public (optimove-api.md section 0): the trigger parser takes
the PascalCase fields (``CustomerID``, ``CampaignID``, ``ActionID``, ``ChannelID``,
``TemplateID``, ``TriggerName``, a personalization object) and the snake_case
``user``/``campaign`` shape, and keeps the raw body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from optibridge.config import EngagementFilesConfig
from optibridge.optimove.engagement import parse_engagement
from optibridge.optimove.models import EventType
from optibridge.refusals import Refusal, Refused
from optibridge.safejson import id_field, json_object

MAX_NOTIFICATION_BYTES = 64 * 1024
MAX_TRIGGER_BYTES = 256 * 1024
KNOWN_EVENTS = {1, 2, 3, 4, 5, 13, 14}
Scalar = str | int | float | bool | None
_PERSONALIZATION_KEYS = ("personalization", "personalizationtags", "personalizationvalues",
                         "personalizations")


@dataclass(frozen=True)
class Notification:
    event_type: int
    campaign_id: int | None
    channel_id: int | None
    payload: dict[str, Any]


def _channel_id(value: Any, name: str, *, required: bool = False) -> int | None:
    return id_field(value, name, required=required, bits=31)  # a 32-bit column


def parse_notification(body: bytes, files: EngagementFilesConfig | None = None
                       ) -> Notification:
    """Validate a scheduled-campaign notification (keys in any case: Optimove's docs and
    proxies disagree on EventTypeID vs eventTypeId). With the tenant's ``files`` settings,
    an EventTypeID 14 addressed to another Optimove tenant is refused."""
    data = json_object(body, MAX_NOTIFICATION_BYTES)
    fields = {str(k).lower(): v for k, v in data.items()}
    event_type = id_field(fields.get("eventtypeid"), "EventTypeID", required=True)
    assert event_type is not None
    if event_type not in KNOWN_EVENTS:
        raise Refused(f"EventTypeID {event_type} is not a scheduled-campaign event "
                      f"(expected one of {sorted(KNOWN_EVENTS)})")
    campaign_id = id_field(fields.get("campaignid"), "CampaignID",
                           required=event_type in {1, 4, 13, 14})
    channel_id = _channel_id(fields.get("channelid"), "ChannelID",
                             required=event_type in {13, 14})
    if event_type == EventType.ENGAGEMENT_FILES:
        parse_engagement(data, files)  # refused now, while Optimove can still be told
    return Notification(event_type, campaign_id, channel_id, data)


@dataclass(frozen=True)
class Route:
    channel_id: int | None
    template_id: int | None


@dataclass(frozen=True)
class ParsedTrigger:
    customer_id: str
    campaign_id: int
    routes: tuple[Route, ...]  # candidate (channel, template) pairs, in payload order
    action_id: int | None
    trigger_name: str | None
    personalization: Mapping[str, Scalar]
    top_level: Mapping[str, Any]  # the body's own fields, keys normalized
    raw: str


def normalized(name: str) -> str:
    """A field name as the trigger parser compares it: no case, ``_`` or ``-``."""
    return name.replace("_", "").replace("-", "").lower()


def _fields(data: Mapping[str, Any]) -> dict[str, Any]:
    return {normalized(str(k)): v for k, v in data.items()}


def text_value(value: Any) -> str | None:
    """A scalar as stripped text (None for absent, empty, bool and structures)."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = str(value).strip()
    return text or None


def _personalization(raw: Any) -> dict[str, Scalar]:
    """Name -> scalar from an object, or from a list of {Key|Name, Value} pairs."""
    if raw is None:
        return {}
    if isinstance(raw, list):
        pairs: dict[str, Any] = {}
        for item in raw:
            item_fields = _fields(item) if isinstance(item, dict) else {}
            name = text_value(item_fields.get("key", item_fields.get("name")))
            if name is None or "value" not in item_fields:
                raise Refused("personalization: a list must hold {Key, Value} objects")
            pairs[name] = item_fields["value"]
        raw = pairs
    if not isinstance(raw, dict):
        raise Refused("personalization must be an object of name: value")
    values: dict[str, Scalar] = {}
    for name, value in raw.items():
        if isinstance(value, (dict, list)):
            raise Refused(f"personalization value {name!r} is not a scalar "
                          f"(got {type(value).__name__})", Refusal.UNPROCESSABLE)
        values[str(name)] = value
    return values


def _snake_routes(campaign: Mapping[str, Any]) -> tuple[Route, ...]:
    action = campaign.get("action")
    channels = action.get("channels") if isinstance(action, dict) else None
    routes = []
    for channel in channels if isinstance(channels, list) else []:
        if not isinstance(channel, dict):
            continue
        templates = channel.get("templates")
        first = templates[0] if isinstance(templates, list) and templates else None
        template = first.get("id") if isinstance(first, dict) else None
        routes.append(Route(_channel_id(channel.get("id"), "campaign.action.channels[].id"),
                            id_field(template, "campaign.action.channels[].templates[].id")))
    return tuple(routes)


def parse_trigger(body: bytes) -> ParsedTrigger:
    """Validate an EventTypeID 11 body in either known shape."""
    top = _fields(json_object(body, MAX_TRIGGER_BYTES))
    user, campaign = top.get("user"), top.get("campaign")
    user_fields = _fields(user) if isinstance(user, dict) else {}
    campaign_fields = _fields(campaign) if isinstance(campaign, dict) else {}
    customer = text_value(top.get("customerid", user_fields.get("userid",
                                                                user_fields.get("customerid"))))
    if customer is None:
        raise Refused("no customer: CustomerID (or user.user_id) is missing")
    campaign_id = id_field(top.get("campaignid", campaign_fields.get("id")), "CampaignID")
    if campaign_id is None:
        raise Refused("no campaign: CampaignID (or campaign.id) is missing")
    action = campaign_fields.get("action")
    action_id = id_field(top.get("actionid", action.get("id") if isinstance(action, dict)
                                 else None), "ActionID")
    routes = _snake_routes(campaign_fields)
    if "channelid" in top or "templateid" in top or not routes:
        routes = (Route(_channel_id(top.get("channelid"), "ChannelID"),
                        id_field(top.get("templateid"), "TemplateID")),)
    raw_personalization = next((top[k] for k in _PERSONALIZATION_KEYS if k in top), None)
    name = text_value(top.get("triggername", top.get("trigger")))
    return ParsedTrigger(customer[:128], campaign_id, routes, action_id,
                         name[:200] if name else None, _personalization(raw_personalization),
                         top, body.decode("utf-8"))
