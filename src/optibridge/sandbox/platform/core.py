"""The platform sandbox's state: a strict emulator of platform-api.md, plus a sender.

Thread safety: the HTTP app and the sender run in uvicorn's thread, tests drive and inspect
from theirs; every access to the state holds ``self._lock``. Nothing awaits under the lock.

Deviation worth knowing: only the platform moves a campaign to SENDING, DONE or ERROR; a PUT
asking for one of those (other than the current state) is refused with 409.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import httpx

from optibridge.config import ChannelType
from optibridge.platform.api import ALLOWED_MOVES, CallbackBatch, CampaignState, MessageEvent
from optibridge.platform.callbacks import encode_callback
from optibridge.sandbox.platform.model import (
    CallbackAttempt,
    EventRates,
    PlatformFaults,
    SandboxCampaign,
    SandboxContact,
    SandboxPayload,
)
from optibridge.sandbox.platform.sender import Row, Run
from optibridge.sandbox.platform.validate import (
    ApiError,
    Params,
    bad,
    callback_url,
    contact_row,
    parse_when,
)

IMPORT_LIMIT = 10_000
CHUNK = 50_000  # contacts handled per campaign per tick: keeps the event loop responsive
DOMAINS = ({"id": 1, "name": "bounce.sandbox.test", "bouncing": True},
           {"id": 2, "name": "mail.sandbox.test", "bouncing": False})
_PLATFORM_ONLY = frozenset({CampaignState.SENDING, CampaignState.DONE, CampaignState.ERROR})
_EDITABLE = frozenset({CampaignState.DRAFT, CampaignState.SCHEDULED, CampaignState.READY})
_CAMPAIGN_FIELDS = {"name", "domain", "list", "segments[]", "state", "when", "event_callback"}


@dataclass
class _Template:
    id: int
    name: str
    type: ChannelType
    body: str
    updated: int

    def as_json(self, with_body: bool) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "name": self.name, "type": self.type.value,
                                "updated": self.updated}
        if with_body:
            data["body"] = self.body
        return data


@dataclass
class _List:
    id: int
    name: str
    # keyed by email, else telephone: re-adding an address updates that contact
    contacts: dict[str, list[Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "size": len(self.contacts)}


@dataclass
class _Window:
    """Events of one (campaign, event, channel) waiting to go out as one callback."""

    when: int
    opened: float  # monotonic
    addresses: list[str]


@dataclass
class _Pending:
    campaign_id: int
    url: str
    batch: CallbackBatch
    due: float  # monotonic
    attempt: int = 1
    duplicate: bool = False


def _now() -> int:
    return int(time.time())


class PlatformSandbox:
    """See the package docstring; all public methods are thread-safe."""

    def __init__(self, api_keys: Iterable[str], *, seed: int = 0, callback_window: float = 300.0,
                 tick: float = 0.05, rates: EventRates | None = None,
                 faults: PlatformFaults | None = None,
                 max_addresses_per_callback: int = 100_000, callback_retry: float = 0.2,
                 callback_attempts: int = 20) -> None:
        self.api_keys = frozenset(api_keys)
        self.seed = seed
        self.callback_window = callback_window
        self.tick = tick
        self.rates = rates or EventRates()
        self.max_addresses_per_callback = max_addresses_per_callback
        self.callback_retry = callback_retry  # first retry delay; doubles up to 30 s
        self.callback_attempts = callback_attempts
        self._lock = threading.Lock()
        self._faults = faults
        self._fault_rng = random.Random(faults.seed if faults else seed)
        self._faults_injected = 0
        self._ids = 0
        self._templates: dict[int, _Template] = {}
        self._lists: dict[int, _List] = {}
        self._campaigns: dict[int, SandboxCampaign] = {}
        self._runs: dict[int, Run] = {}
        self._windows: dict[tuple[int, MessageEvent, ChannelType], _Window] = {}
        self._truth: dict[tuple[int, MessageEvent, date], list[list[str]]] = {}
        self._pending: list[_Pending] = []
        self._in_flight = 0
        self._attempts: list[CallbackAttempt] = []

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    # -- Python API for tests and the demo -------------------------------------------------

    def set_faults(self, faults: PlatformFaults | None) -> None:
        with self._lock:
            self._faults = faults
            self._fault_rng = random.Random(faults.seed if faults else self.seed)
            self._faults_injected = 0

    @property
    def faults(self) -> PlatformFaults | None:
        return self._faults

    def add_template(self, name: str, type: ChannelType, body: str) -> int:
        with self._lock:
            template = _Template(self._next_id(), name, ChannelType(type), body, _now())
            self._templates[template.id] = template
            return template.id

    def rename_template(self, template_id: int, name: str) -> None:
        with self._lock:
            template = self._templates[template_id]
            template.name, template.updated = name, _now()

    def delete_template(self, template_id: int) -> None:
        with self._lock:
            del self._templates[template_id]

    def ground_truth(self) -> set[tuple[int, str, str, date]]:
        """Every unique (campaign id, event, address, UTC date of the callback's `when`) the
        sender produced, whether or not its callback got through."""
        with self._lock:
            return {(cid, event.value, address, day)
                    for (cid, event, day), lists in self._truth.items()
                    for addresses in lists for address in addresses}

    def campaigns(self) -> list[SandboxCampaign]:
        with self._lock:
            return [self._progress(c) for c in self._campaigns.values()]

    def campaign(self, campaign_id: int) -> SandboxCampaign:
        """KeyError if unknown."""
        with self._lock:
            return self._progress(self._campaigns[campaign_id])

    def _progress(self, campaign: SandboxCampaign) -> SandboxCampaign:
        run = self._runs.get(campaign.id)
        if run is None:
            return campaign
        return replace(campaign, contacts_total=len(run.rows), contacts_done=run.position)

    def contacts(self, list_id: int) -> list[SandboxContact]:
        with self._lock:
            return [SandboxContact(email, telephone, dict(fields))
                    for email, telephone, fields in self._lists[list_id].contacts.values()]

    def callbacks_sent(self) -> list[CallbackAttempt]:
        with self._lock:
            return list(self._attempts)

    def rendered(self, campaign_id: int) -> dict[str, str]:
        """Address -> message text of every contact the campaign was sent to."""
        with self._lock:
            run = self._runs.get(campaign_id)
        return run.rendered() if run is not None else {}

    def idle(self) -> bool:
        """No campaign READY or SENDING, no open window, no callback waiting or in flight."""
        with self._lock:
            busy = any(c.state in (CampaignState.READY, CampaignState.SENDING)
                       for c in self._campaigns.values())
            return not (busy or self._windows or self._pending or self._in_flight)

    # -- API faults and auth (called by the app before each platform call) -----------------

    def authorized(self, header: str | None) -> bool:
        scheme, _, key = (header or "").partition(" ")
        return scheme == "Bearer" and key in self.api_keys

    def injected_fault(self) -> tuple[int, float | None] | None:
        """(status, Retry-After) to answer instead of applying the call, or None."""
        with self._lock:
            faults = self._faults
            if faults is None or (faults.api_faults_max is not None
                                  and self._faults_injected >= faults.api_faults_max):
                return None
            draw = self._fault_rng.random()
            if draw < faults.api_rate_limit_rate:
                self._faults_injected += 1
                return 429, faults.retry_after
            if draw < faults.api_rate_limit_rate + faults.api_error_rate:
                self._faults_injected += 1
                return 500, None
            return None

    # -- platform API operations (raise ApiError) ------------------------------------------

    def _get(self, campaign_id: int) -> SandboxCampaign:
        campaign = self._campaigns.get(campaign_id)
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

    def _check_move(self, campaign: SandboxCampaign, target: CampaignState) -> None:
        current = campaign.state
        if target not in ALLOWED_MOVES[current]:
            raise ApiError(409, f"state: cannot move from {current.value} to {target.value}")
        if target != current and target in _PLATFORM_ONLY:
            raise ApiError(409, f"state: only the platform moves a campaign to {target.value}")
        if target is CampaignState.READY and not campaign.payloads:
            raise ApiError(409, "state: READY needs at least one payload")

    def create_campaign(self, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
        params = Params(pairs, _CAMPAIGN_FIELDS)
        name = params.text("name", required=True) or ""
        if not name.strip():
            raise bad("name: must not be empty")
        domain = params.integer("domain", required=True) or 0
        list_id = params.integer("list", required=True) or 0
        segments = params.integers("segments[]")
        state_text = params.text("state") or CampaignState.DRAFT.value
        when = parse_when(params.text("when", required=True) or "")
        callback = callback_url(params.text("event_callback") or "")
        with self._lock:
            self._check_domain(domain)
            if list_id not in self._lists:
                raise bad(f"list: no list {list_id}")
            state = _state(state_text)
            draft = SandboxCampaign(
                id=0, name=name, state=CampaignState.DRAFT, list_id=list_id, domain=domain,
                when=when, event_callback=callback, segments=self._check_segments(segments),
                payloads=(), created=_now())
            self._check_move(draft, state)
            campaign = replace(draft, id=self._next_id(), state=state)
            self._campaigns[campaign.id] = campaign
            return campaign.as_json()

    def update_campaign(self, campaign_id: int, pairs: Sequence[tuple[str, str]]
                        ) -> dict[str, Any]:
        params = Params(pairs, _CAMPAIGN_FIELDS)
        if params.has("list"):
            raise bad("list: a campaign's list cannot be changed")
        name = params.text("name")
        if name is not None and not name.strip():
            raise bad("name: must not be empty")
        domain = params.integer("domain")
        segments = params.integers("segments[]") if params.has("segments[]") else None
        state_text = params.text("state")
        when_text = params.text("when")
        when = parse_when(when_text) if when_text is not None else None
        callback = params.text("event_callback")
        url = callback_url(callback) if callback is not None else None
        with self._lock:
            campaign = self._get(campaign_id)
            edits: dict[str, Any] = {}
            if name is not None:
                edits["name"] = name
            if domain is not None:
                self._check_domain(domain)
                edits["domain"] = domain
            if segments is not None:
                edits["segments"] = self._check_segments(segments)
            if when is not None:
                edits["when"] = when
            if callback is not None:
                edits["event_callback"] = url
            if edits and campaign.state not in _EDITABLE:
                raise ApiError(409, f"campaign is {campaign.state.value}: it can't be edited")
            if state_text is not None:
                target = _state(state_text)
                self._check_move(campaign, target)
                edits["state"] = target
            campaign = replace(campaign, **edits)
            self._campaigns[campaign_id] = campaign
            return campaign.as_json()

    def get_campaign(self, campaign_id: int) -> dict[str, Any]:
        with self._lock:
            return self._progress(self._get(campaign_id)).as_json()

    def delete_campaign(self, campaign_id: int) -> dict[str, Any]:
        with self._lock:
            campaign = self._get(campaign_id)
            if campaign.state is CampaignState.SENDING:
                raise ApiError(409, "campaign is SENDING: it can't be deleted now")
            del self._campaigns[campaign_id]
            return campaign.as_json()

    def attach_payload(self, campaign_id: int, pairs: Sequence[tuple[str, str]]
                       ) -> dict[str, Any]:
        params = Params(pairs, {"type", "template"})
        type_text = params.text("type", required=True) or ""
        if type_text not in ("email", "sms"):
            raise bad("type: must be email or sms")
        template_id = params.integer("template", required=True) or 0
        with self._lock:
            campaign = self._get(campaign_id)
            template = self._templates.get(template_id)
            if template is None:
                raise bad(f"template: no template {template_id}")
            if template.type.value != type_text:
                raise bad(f"template: template {template_id} is {template.type.value}, "
                          f"not {type_text}")
            if campaign.state not in (CampaignState.DRAFT, CampaignState.SCHEDULED):
                raise ApiError(409, f"campaign is {campaign.state.value}: payloads can be "
                                    "attached only while DRAFT or SCHEDULED")
            payload = SandboxPayload(ChannelType(type_text), template_id)
            campaign = replace(campaign, payloads=(*campaign.payloads, payload))
            self._campaigns[campaign_id] = campaign
            return campaign.as_json()

    def create_list(self, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
        name = Params(pairs, {"name"}).text("name", required=True) or ""
        if not name.strip():
            raise bad("name: must not be empty")
        with self._lock:
            contact_list = _List(self._next_id(), name)
            self._lists[contact_list.id] = contact_list
            return contact_list.as_json()

    def _list(self, list_id: int) -> _List:
        found = self._lists.get(list_id)
        if found is None:
            raise ApiError(404, f"no list {list_id}")
        return found

    def get_list(self, list_id: int) -> dict[str, Any]:
        with self._lock:
            return self._list(list_id).as_json()

    def delete_list(self, list_id: int) -> dict[str, Any]:
        with self._lock:
            found = self._list(list_id)
            busy = [c.id for c in self._campaigns.values() if c.list_id == list_id
                    and c.state in (CampaignState.READY, CampaignState.SENDING)]
            if busy:
                raise ApiError(409, f"list {list_id} is used by campaign {busy[0]}, which is "
                                    "READY or SENDING")
            del self._lists[list_id]
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
        with self._lock:
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

    def list_templates(self, offset: int, limit: int) -> dict[str, Any]:
        with self._lock:
            items = [t.as_json(with_body=False) for t in self._templates.values()]
        return {"items": items[offset:offset + limit], "total": len(items)}

    def get_template(self, template_id: int) -> dict[str, Any]:
        with self._lock:
            template = self._templates.get(template_id)
            if template is None:
                raise ApiError(404, f"no template {template_id}")
            return template.as_json(with_body=True)

    def list_domains(self, offset: int, limit: int) -> dict[str, Any]:
        return {"items": [dict(d) for d in DOMAINS[offset:offset + limit]],
                "total": len(DOMAINS)}

    # -- the sender ------------------------------------------------------------------------

    def step(self) -> None:
        """One tick of the sender: start due campaigns, handle a chunk of each, close
        windows whose time is up into callbacks."""
        with self._lock:
            wall, mono = time.time(), time.monotonic()
            for campaign in list(self._campaigns.values()):
                if campaign.state is CampaignState.READY and campaign.when <= wall:
                    self._start(campaign)
            for campaign_id, run in self._runs.items():
                sending = self._campaigns.get(campaign_id)
                if sending is not None and sending.state is CampaignState.SENDING:
                    self._advance(sending, run, wall, mono)
            self._close_windows(mono)

    def _advance(self, campaign: SandboxCampaign, run: Run, wall: float, mono: float) -> None:
        for (event, kind), addresses in run.step(CHUNK).items():
            if addresses:
                self._window(campaign.id, event, kind, wall, mono).extend(addresses)
        if run.finished:
            done = run.stop_at >= len(run.rows)
            self._finish(campaign, CampaignState.DONE if done else CampaignState.ERROR)

    def _start(self, campaign: SandboxCampaign) -> None:
        faults = self._faults or PlatformFaults()
        rows: list[Row] = [(e, t, f) for e, t, f in self._lists[campaign.list_id].contacts
                           .values()] if campaign.list_id in self._lists else []
        bodies = []
        for payload in campaign.payloads:
            template = self._templates.get(payload.template)
            if template is None:  # deleted since it was attached: the platform can't send
                self._finish(campaign, CampaignState.ERROR)
                return
            bodies.append((payload.type, template.body))
        share = faults.fail_campaigns_after
        stop_at = len(rows) if share is None else min(len(rows), int(len(rows) * share))
        rng = random.Random(f"{self.seed}:{campaign.id}")
        self._runs[campaign.id] = Run(rows, bodies, rng, self.rates,
                                      faults.withhold_submitted_rate, stop_at)
        self._campaigns[campaign.id] = replace(campaign, state=CampaignState.SENDING)

    def _finish(self, campaign: SandboxCampaign, state: CampaignState) -> None:
        run = self._runs.get(campaign.id)
        total, done = (len(run.rows), run.position) if run else (0, 0)
        self._campaigns[campaign.id] = replace(campaign, state=state, contacts_total=total,
                                               contacts_done=done)

    def _window(self, campaign_id: int, event: MessageEvent, kind: ChannelType,
                wall: float, mono: float) -> list[str]:
        key = (campaign_id, event, kind)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(int(wall), mono, [])
        return window.addresses

    def _close_windows(self, mono: float) -> None:
        for key, window in list(self._windows.items()):
            if mono - window.opened < self.callback_window:
                continue
            del self._windows[key]
            campaign_id, event, kind = key
            day = datetime.fromtimestamp(window.when, UTC).date()
            self._truth.setdefault((campaign_id, event, day), []).append(window.addresses)
            campaign = self._campaigns.get(campaign_id)
            if campaign is None or not campaign.event_callback:
                continue
            delay = self._faults.callback_delay if self._faults else 0.0
            size = self.max_addresses_per_callback
            for start in range(0, len(window.addresses), size):
                part = tuple(window.addresses[start:start + size])
                batch = CallbackBatch(event, window.when, kind, part)
                self._pending.append(_Pending(campaign_id, campaign.event_callback, batch,
                                              mono + delay))

    def _due(self) -> list[_Pending]:
        with self._lock:
            now = time.monotonic()
            due = [p for p in self._pending if p.due <= now]
            if not due:
                return []
            self._pending = [p for p in self._pending if p.due > now]
            due.sort(key=lambda p: p.due)
            if self._faults and self._faults.reorder_callbacks:
                self._fault_rng.shuffle(due)
            self._in_flight += len(due)
            return due

    async def deliver(self, client: httpx.AsyncClient) -> None:
        """Send every due callback, one at a time, in order (or shuffled, per fault)."""
        for pending in self._due():
            status = await self._post(client, pending)
            self._record(pending, status)

    async def _post(self, client: httpx.AsyncClient, pending: _Pending) -> int | None:
        with self._lock:
            faults = self._faults
            if faults and self._fault_rng.random() < faults.callback_error_rate:
                return 503
        try:
            response = await client.post(
                pending.url, content=encode_callback(pending.batch),
                headers={"Content-Type": "application/x-www-form-urlencoded"})
        except httpx.HTTPError:
            return None
        return response.status_code

    def _record(self, pending: _Pending, status: int | None) -> None:
        with self._lock:
            self._in_flight -= 1
            batch = pending.batch
            self._attempts.append(CallbackAttempt(
                pending.campaign_id, pending.url, batch.event, len(batch.addresses), status,
                pending.attempt, pending.duplicate, batch.when))
            now = time.monotonic()
            if status is not None and 200 <= status < 300:
                faults = self._faults
                if (not pending.duplicate and faults
                        and self._fault_rng.random() < faults.duplicate_callback_rate):
                    self._pending.append(replace(pending, due=now + self._fault_rng.random()
                                                 * self.tick * 4, attempt=1, duplicate=True))
                return
            if pending.attempt < self.callback_attempts:
                backoff = min(30.0, self.callback_retry * 2 ** (pending.attempt - 1))
                self._pending.append(replace(pending, due=now + backoff,
                                             attempt=pending.attempt + 1))

    async def run(self) -> None:
        """The sender (the app's lifespan runs it until shutdown): events and callback
        delivery in two loops, so that a slow receiver does not hold up sending."""
        async with httpx.AsyncClient(timeout=30.0) as client, asyncio.TaskGroup() as group:
            group.create_task(self._loop(self.step))
            group.create_task(self._loop(lambda: self.deliver(client)))

    async def _loop(self, work: Callable[[], Awaitable[None] | None]) -> None:
        while True:
            result = work()
            if result is not None:
                await result
            await asyncio.sleep(self.tick)


def _state(text: str) -> CampaignState:
    try:
        return CampaignState(text)
    except ValueError:
        names = ", ".join(s.value for s in CampaignState)
        raise bad(f"state: {text[:20]!r} is not one of {names}") from None
