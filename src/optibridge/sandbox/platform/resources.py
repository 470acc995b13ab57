"""The REST resources of platform-api.md: templates, domains, contact lists and campaigns.

Not thread-safe by itself: ``PlatformSandbox`` holds its lock around every call. Methods named
after an endpoint raise ``ApiError``; the others are the sandbox's own Python API.

Deviation worth knowing: only the platform moves a campaign to SENDING, DONE or ERROR; a PUT
asking for one of those (other than the current state) is refused with 409.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from optibridge.sandbox.platform.contract import (
    EDITABLE,
    LIVE,
    MOVES,
    PLATFORM_ONLY,
    Channel,
    State,
    parse_state,
)
from optibridge.sandbox.platform.model import (
    SandboxCampaign,
    SandboxContact,
    SandboxPayload,
    Settings,
)
from optibridge.sandbox.platform.sender import Row
from optibridge.sandbox.platform.validate import (
    ApiError,
    Params,
    bad,
    callback_url,
    contact_row,
    parse_when,
)

IMPORT_LIMIT = 10_000
DOMAINS = ({"id": 1, "name": "bounce.sandbox.test", "bouncing": True},
           {"id": 2, "name": "mail.sandbox.test", "bouncing": False})
_CAMPAIGN_FIELDS = {"name", "domain", "list", "segments[]", "state", "when", "event_callback"}


def _now() -> int:
    return int(time.time())


@dataclass
class Template:
    id: int
    name: str
    type: Channel
    body: str
    updated: int

    def as_json(self, with_body: bool) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "name": self.name, "type": self.type.value,
                                "updated": self.updated}
        if with_body:
            data["body"] = self.body
        return data


@dataclass
class ContactList:
    id: int
    name: str
    # keyed by email, else telephone: re-adding an address updates that contact
    contacts: dict[str, list[Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "size": len(self.contacts)}


def _state(text: str) -> State:
    try:
        return parse_state(text)
    except ValueError as error:
        raise bad(str(error)) from None


def _edits(params: Params) -> dict[str, Any]:
    """The fields a PUT gives (all but ``state``), parsed; domain and segments not yet checked."""
    edits: dict[str, Any] = {}
    name = params.text("name")
    if name is not None:
        if not name.strip():
            raise bad("name: must not be empty")
        edits["name"] = name
    domain = params.integer("domain")
    if domain is not None:
        edits["domain"] = domain
    if params.has("segments[]"):
        edits["segments"] = params.integers("segments[]")
    when = params.text("when")
    if when is not None:
        edits["when"] = parse_when(when)
    callback = params.text("event_callback")
    if callback is not None:
        edits["event_callback"] = callback_url(callback)
    return edits


class Resources:
    """Every template, list and campaign, with the operations of the platform API."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._ids = 0
        self._settings = settings or Settings()
        self._scatter = random.Random(self._settings.seed + 1)
        self.templates: dict[int, Template] = {}
        self.lists: dict[int, ContactList] = {}
        self.campaigns: dict[int, SandboxCampaign] = {}

    def _next_id(self) -> int:
        """The next ID: counted up, or drawn at random (``Settings.scattered_ids``)."""
        if not self._settings.scattered_ids:
            self._ids += 1
            return self._ids
        taken = self.templates.keys() | self.lists.keys() | self.campaigns.keys()
        while (drawn := self._scatter.randrange(1, 2**31)) in taken:
            pass
        return drawn

    # -- the sandbox's own API -------------------------------------------------------------

    def add_template(self, name: str, type: Channel | str, body: str) -> int:
        template = Template(self._next_id(), name, Channel(type), body, _now())
        self.templates[template.id] = template
        return template.id

    def rename_template(self, template_id: int, name: str) -> None:
        template = self.templates[template_id]
        template.name, template.updated = name, _now()

    def delete_template(self, template_id: int) -> None:
        del self.templates[template_id]

    def contacts(self, list_id: int) -> list[SandboxContact]:
        return [SandboxContact(email, telephone, dict(fields))
                for email, telephone, fields in self.lists[list_id].contacts.values()]

    def list_names(self) -> dict[int, str]:
        return {found.id: found.name for found in self.lists.values()}

    def rows(self, list_id: int) -> list[Row]:
        """The list's contacts as the sender reads them (none if the list is gone)."""
        found = self.lists.get(list_id)
        return [(e, t, f) for e, t, f in found.contacts.values()] if found else []

    # -- campaigns -------------------------------------------------------------------------

    def campaign(self, campaign_id: int) -> SandboxCampaign:
        campaign = self.campaigns.get(campaign_id)
        if campaign is None:
            raise ApiError(404, f"no campaign {campaign_id}")
        return campaign

    def _check_domain(self, domain: int) -> None:
        found = [d for d in DOMAINS if d["id"] == domain]
        if not found:
            raise bad(f"domain: no domain {domain}")
        if not found[0]["bouncing"]:
            raise bad(f"domain: domain {domain} is not a bouncing domain")

    def _check_segments(self, segments: list[int]) -> tuple[int, ...]:
        # The contract has no segment API, so no list here has segments.
        if segments:
            raise bad(f"segments[]: list has no segment {segments[0]}")
        return ()

    def _check_move(self, campaign: SandboxCampaign, target: State) -> None:
        current = campaign.state
        if target not in MOVES[current]:
            raise ApiError(409, f"state: cannot move from {current.value} to {target.value}")
        if target != current and target in PLATFORM_ONLY:
            raise ApiError(409, f"state: only the platform moves a campaign to {target.value}")
        if target is State.READY and not campaign.payloads:
            raise ApiError(409, "state: READY needs at least one payload")

    def create_campaign(self, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
        params = Params(pairs, _CAMPAIGN_FIELDS)
        name = params.text("name", required=True) or ""
        if not name.strip():
            raise bad("name: must not be empty")
        domain = params.integer("domain", required=True) or 0
        list_id = params.integer("list", required=True) or 0
        segments = params.integers("segments[]")
        state_text = params.text("state") or State.DRAFT.value
        when = parse_when(params.text("when", required=True) or "")
        callback = callback_url(params.text("event_callback") or "")
        self._check_domain(domain)
        if list_id not in self.lists:
            raise bad(f"list: no list {list_id}")
        state = _state(state_text)
        draft = SandboxCampaign(
            id=0, name=name, state=State.DRAFT, list_id=list_id, domain=domain,
            when=when, event_callback=callback, segments=self._check_segments(segments),
            payloads=(), created=_now())
        self._check_move(draft, state)
        campaign = replace(draft, id=self._next_id(), state=state)
        self.campaigns[campaign.id] = campaign
        return campaign.as_json()

    def update_campaign(self, campaign_id: int, pairs: Sequence[tuple[str, str]]
                        ) -> dict[str, Any]:
        params = Params(pairs, _CAMPAIGN_FIELDS)
        if params.has("list"):
            raise bad("list: a campaign's list cannot be changed")
        edits = _edits(params)
        state_text = params.text("state")
        campaign = self.campaign(campaign_id)
        if "domain" in edits:
            self._check_domain(edits["domain"])
        if "segments" in edits:
            edits["segments"] = self._check_segments(edits["segments"])
        if edits and campaign.state not in EDITABLE:
            raise ApiError(409, f"campaign is {campaign.state.value}: it can't be edited")
        if state_text is not None:
            target = _state(state_text)
            self._check_move(campaign, target)
            edits["state"] = target
        campaign = replace(campaign, **edits)
        self.campaigns[campaign_id] = campaign
        return campaign.as_json()

    def delete_campaign(self, campaign_id: int) -> dict[str, Any]:
        campaign = self.campaign(campaign_id)
        if campaign.state is State.SENDING:
            raise ApiError(409, "campaign is SENDING: it can't be deleted now")
        del self.campaigns[campaign_id]
        return campaign.as_json()

    def attach_payload(self, campaign_id: int, pairs: Sequence[tuple[str, str]]
                       ) -> dict[str, Any]:
        params = Params(pairs, {"type", "template"})
        type_text = params.text("type", required=True) or ""
        if type_text not in ("email", "sms"):
            raise bad("type: must be email or sms")
        template_id = params.integer("template", required=True) or 0
        campaign = self.campaign(campaign_id)
        template = self.templates.get(template_id)
        if template is None:
            raise bad(f"template: no template {template_id}")
        if template.type.value != type_text:
            raise bad(f"template: template {template_id} is {template.type.value}, "
                      f"not {type_text}")
        if campaign.state not in (State.DRAFT, State.SCHEDULED):
            raise ApiError(409, f"campaign is {campaign.state.value}: payloads can be "
                                "attached only while DRAFT or SCHEDULED")
        payload = SandboxPayload(Channel(type_text), template_id)
        campaign = replace(campaign, payloads=(*campaign.payloads, payload))
        self.campaigns[campaign_id] = campaign
        return campaign.as_json()

    # -- lists -----------------------------------------------------------------------------

    def create_list(self, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
        name = Params(pairs, {"name"}).text("name", required=True) or ""
        if not name.strip():
            raise bad("name: must not be empty")
        contact_list = ContactList(self._next_id(), name)
        self.lists[contact_list.id] = contact_list
        return contact_list.as_json()

    def _list(self, list_id: int) -> ContactList:
        found = self.lists.get(list_id)
        if found is None:
            raise ApiError(404, f"no list {list_id}")
        return found

    def get_list(self, list_id: int) -> dict[str, Any]:
        return self._list(list_id).as_json()

    def delete_list(self, list_id: int) -> dict[str, Any]:
        found = self._list(list_id)
        busy = [c.id for c in self.campaigns.values()
                if c.list_id == list_id and c.state in LIVE]
        if busy:
            raise ApiError(409, f"list {list_id} is used by campaign {busy[0]}, which is "
                                "READY or SENDING")
        del self.lists[list_id]
        return found.as_json()

    def add_contacts(self, list_id: int, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict) or set(payload) != {"contacts"}:
            raise bad('body: must be {"contacts": [...]}')
        rows = payload["contacts"]
        if not isinstance(rows, list):
            raise bad("contacts: must be a list")
        if len(rows) > IMPORT_LIMIT:
            raise bad(f"contacts: at most {IMPORT_LIMIT} per call, got {len(rows)}")
        valid: list[tuple[str | None, str | None, dict[str, str]]] = []
        rejected: list[dict[str, Any]] = []
        for index, row in enumerate(rows):
            try:
                valid.append(contact_row(row))
            except ValueError as error:
                rejected.append({"index": index, "error": str(error)})
        contacts = self._list(list_id).contacts
        for email, telephone, fields in valid:
            key = email or telephone or ""
            existing = contacts.get(key)
            if existing is None:
                contacts[key] = [email, telephone, fields]
            else:  # the address is known: update it
                existing[1] = telephone or existing[1]
                existing[2] = {**existing[2], **fields}
        return {"added": len(valid), "rejected": rejected}

    # -- templates and domains -------------------------------------------------------------

    def list_templates(self, offset: int, limit: int) -> dict[str, Any]:
        items = [t.as_json(with_body=False) for t in self.templates.values()]
        return {"items": items[offset:offset + limit], "total": len(items)}

    def get_template(self, template_id: int) -> dict[str, Any]:
        template = self.templates.get(template_id)
        if template is None:
            raise ApiError(404, f"no template {template_id}")
        return template.as_json(with_body=True)

    def list_domains(self, offset: int, limit: int) -> dict[str, Any]:
        return {"items": [dict(d) for d in DOMAINS[offset:offset + limit]],
                "total": len(DOMAINS)}
