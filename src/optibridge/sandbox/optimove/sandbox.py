"""OptimoveSandbox: a strict, thread-safe, in-memory Optimove for tests, demos and partners.

The HTTP app (app.py) runs on uvicorn's loop while tests call these methods from their own
thread, so every read and write of the state takes ``self._lock``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx

from optibridge.sandbox.optimove import events as metric
from optibridge.sandbox.optimove.events import MetricTenant, ReceivedEvent, Refused
from optibridge.sandbox.optimove.faults import Fault, FaultPlan, FaultRoller
from optibridge.sandbox.optimove.functions import FUNCTIONS, Context, Function, Request, resolve
from optibridge.sandbox.optimove.state import (
    AttributeDefinition,
    Audience,
    AudienceRow,
    ChannelPreference,
    JournalEntry,
    Listener,
    Notification,
    ReportedInteraction,
    TenantState,
)
from optibridge.sandbox.optimove.validation import Invalid

log = logging.getLogger(__name__)

# Optimove's documented 429 body ([RATE]).
RATE_LIMIT_BODY = {"status": 429, "error": "Too Many Requests",
                   "message": "You have exceeded the rate limit for this API group. "
                              "Please retry later."}


SAVE_EVENT = "saveEvent"
INJECTED_ERROR_BODY = {"status": "error", "message": "internal error, please retry "
                       "(injected error body)"}


@dataclass(frozen=True)
class Outcome:
    """What the app must answer: status, JSON body bytes, headers, and the fault to act out."""

    status: int
    body: bytes
    headers: Mapping[str, str]
    fault: Fault | None = None
    slow_seconds: float = 0.0


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _checked(plan: FaultPlan | None) -> FaultPlan | None:
    """Refuse a plan naming a Function the sandbox does not serve (a typo never fires)."""
    if plan is not None and plan.functions is not None:
        unknown = sorted(plan.functions - set(FUNCTIONS) - {SAVE_EVENT.lower()})
        if unknown:
            raise ValueError(f"fault plan names unknown Functions: {unknown}")
    return plan


class _Window:
    """Exact sliding window of arrivals for one API key."""

    def __init__(self, requests: int, per_seconds: float) -> None:
        self.requests = requests
        self.per_seconds = per_seconds
        self.arrivals: deque[float] = deque()

    def admit(self, now: float) -> float | None:
        """Count this arrival; None if within the limit, else seconds until there is room.

        Every arrival counts, refused ones too: a client that ignores 429s stays locked out.
        """
        while self.arrivals and now - self.arrivals[0] >= self.per_seconds:
            self.arrivals.popleft()
        over = len(self.arrivals) >= self.requests
        self.arrivals.append(now)
        if not over:
            return None
        return self.arrivals[-self.requests] + self.per_seconds - now


class OptimoveSandbox:
    """Per-tenant Optimove state behind API keys (``api_keys`` maps key -> tenant name)."""

    def __init__(self, api_keys: Mapping[str, str], *, rate_limit: tuple[int, float] = (50, 10.0),
                 faults: FaultPlan | None = None, seed: int = 0, max_top: int = 100_000,
                 max_attribute_customers: int = 10_000, attributes_as_string: bool = False,
                 journal_size: int = 100_000, metric_tenants: Iterable[MetricTenant] = (),
                 metric_rate_limit: tuple[int, float] = (50, 10.0)) -> None:
        if not api_keys:
            raise ValueError("the sandbox needs at least one API key")
        self._keys = dict(api_keys)
        self._tenants = {name: TenantState(name) for name in sorted(set(self._keys.values()))}
        self._rate_limit = rate_limit
        self._windows: dict[str, _Window] = {}
        self._seed = seed
        self._roller = FaultRoller(_checked(faults), seed)
        self.max_top = max_top
        self.max_attribute_customers = max_attribute_customers
        # The 2016 live API answered attributes as one delimited string [MOCK].
        self.attributes_as_string = attributes_as_string
        self._journal: deque[JournalEntry] = deque(maxlen=journal_size)
        self._metric_tenants: dict[int, MetricTenant] = {}
        self._metric_rate_limit = metric_rate_limit
        self._seq = 0
        self._lock = threading.Lock()
        for item in metric_tenants:
            self.configure_metric_tenant(item)

    # ---------------------------------------------------------------- configuration

    @property
    def tenants(self) -> list[str]:
        return list(self._tenants)

    @property
    def faults(self) -> FaultPlan | None:
        return self._roller.plan

    def set_faults(self, faults: FaultPlan | None) -> None:
        """Replace the fault plan; its seed restarts the random stream."""
        with self._lock:
            self._roller = FaultRoller(_checked(faults), self._seed)

    def _tenant(self, tenant: str) -> TenantState:
        try:
            return self._tenants[tenant]
        except KeyError:
            raise KeyError(f"unknown sandbox tenant {tenant!r} "
                           f"(known: {', '.join(self._tenants)})") from None

    def configure_metric_tenant(self, settings: MetricTenant) -> None:
        """Serve saveEvent for Optimove tenant ``settings.tenant_id`` (its token, names)."""
        self._tenant(settings.name)
        with self._lock:
            self._metric_tenants[settings.tenant_id] = settings

    def metric_tenant(self, tenant_id: int) -> MetricTenant | None:
        with self._lock:
            return self._metric_tenants.get(tenant_id)

    def load_audience(self, tenant: str, campaign_id: int, channel_id: int,
                      rows: Iterable[AudienceRow]) -> int:
        """Append recipients to a campaign's audience on a channel; returns its size."""
        with self._lock:
            state = self._tenant(tenant)
            if channel_id not in state.channels:
                raise ValueError(f"channel {channel_id} is not an execution channel of "
                                 f"{tenant!r}: call add_execution_channel first")
            audience = state.audiences.setdefault((campaign_id, channel_id), Audience())
            audience.add(rows)
            return len(audience)

    def clear_audience(self, tenant: str, campaign_id: int, channel_id: int) -> None:
        with self._lock:
            self._tenant(tenant).audiences.pop((campaign_id, channel_id), None)

    def add_execution_channel(self, tenant: str, channel_id: int, name: str) -> None:
        with self._lock:
            self._tenant(tenant).channels[channel_id] = name

    # ---------------------------------------------------------------- notifications

    def notify(self, tenant: str, event_type_id: int, *, campaign_id: int | None = None,
               channel_id: int | None = None, extra: Mapping[str, Any] | None = None,
               timeout: float = 10.0) -> list[int]:
        """POST the event to every matching listener of the tenant; their HTTP statuses.

        Synchronous, and without the lock held while sending, so a listener may call the
        sandbox back. 0 stands for a listener that could not be reached.
        """
        payload: dict[str, Any] = {"EventTypeID": event_type_id,
                                   "TimeStamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M")}
        if campaign_id is not None:
            payload["CampaignID"] = campaign_id
        if channel_id is not None:
            payload["ChannelID"] = channel_id
        payload.update(extra or {})
        with self._lock:
            urls = [url for (event, channel), url in self._tenant(tenant).listeners.items()
                    if event == event_type_id and (channel is None or channel == channel_id)]
        sent = [Notification(url, payload, self._post(url, payload, timeout)) for url in urls]
        with self._lock:
            self._tenant(tenant).notifications.extend(sent)
        return [note.status for note in sent]

    @staticmethod
    def _post(url: str, payload: Mapping[str, Any], timeout: float) -> int:
        try:
            with httpx.Client(timeout=timeout) as client:
                return client.post(url, json=payload).status_code
        except httpx.HTTPError as error:
            log.warning("sandbox: listener %s unreachable: %s", url, error)
            return 0

    # ---------------------------------------------------------------- what tests read

    def journal(self, tenant: str | None = None) -> list[JournalEntry]:
        """Every request, oldest first; with ``tenant``, only that tenant's."""
        with self._lock:
            return [entry for entry in self._journal if tenant is None or entry.tenant == tenant]

    def reported_interactions(self, tenant: str) -> list[ReportedInteraction]:
        with self._lock:
            return list(self._tenant(tenant).interactions)

    def interaction_counts(self, tenant: str
                           ) -> Counter[tuple[int, int, int, int, int, date, str]]:
        """How many times each (campaign, channel, template, event, group, date, customer)
        was reported: more than 1 means a double count."""
        with self._lock:
            return Counter(row.key() for row in self._tenant(tenant).interactions)

    def received_events(self, tenant: str) -> list[ReceivedEvent]:
        """What saveEvent accepted, oldest first."""
        with self._lock:
            return list(self._tenant(tenant).events)

    def event_counts(self, tenant: str) -> Counter[tuple[str, str, str, str]]:
        """How many times each (event, customer, timestamp, context) came: more than 1 is
        a double count."""
        with self._lock:
            return Counter(event.key() for event in self._tenant(tenant).events)

    def metrics(self, tenant: str) -> dict[tuple[int, int, int, int], int]:
        """Latest value per (campaign_id, channel_id, template_id, metric_id)."""
        with self._lock:
            return dict(self._tenant(tenant).metrics)

    def channel_templates(self, tenant: str, channel_id: int) -> dict[int, str]:
        with self._lock:
            return dict(self._tenant(tenant).templates.get(channel_id, {}))

    def preferences(self, tenant: str) -> list[ChannelPreference]:
        with self._lock:
            return [ChannelPreference(channel, customer, mode, app) for (channel, app, customer),
                    mode in sorted(self._tenant(tenant).preferences.items(),
                                   key=lambda item: (item[0][0], item[0][1] or "", item[0][2]))]

    def customer_attributes(self, tenant: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {customer: dict(values)
                    for customer, values in self._tenant(tenant).customer_values.items()}

    def defined_attributes(self, tenant: str) -> dict[str, AttributeDefinition]:
        with self._lock:
            return dict(self._tenant(tenant).attributes)

    def listeners(self, tenant: str) -> list[Listener]:
        with self._lock:
            items = sorted(self._tenant(tenant).listeners.items(),
                           key=lambda item: (item[0][0], item[0][1] or 0))
        return [Listener(event_type_id=event, listener_url=url, channel_id=channel)
                for (event, channel), url in items]

    def execution_channels(self, tenant: str) -> dict[int, str]:
        with self._lock:
            return dict(self._tenant(tenant).channels)

    def notifications(self, tenant: str) -> list[Notification]:
        with self._lock:
            return list(self._tenant(tenant).notifications)

    # ---------------------------------------------------------------- serving a call

    def call(self, *, api_key: str | None, method: str, path: str,
             query: Sequence[tuple[str, str]], raw_body: bytes) -> Outcome:
        """Answer one Optimove API request (the HTTP app's only entry point)."""
        arrived, wall = time.monotonic(), datetime.now(UTC)
        tenant = self._keys.get(api_key) if api_key else None
        function = resolve(path)
        record = _Record(self, arrived, wall, tenant, method, path, list(query),
                         function.name if function else path)
        if function is None:
            return record.answer(404, {"error": "unknown Function", "field": "path"})
        if method != function.method:
            return record.answer(405, "Method Not Allowed")
        if tenant is None or api_key is None:
            return record.answer(401, {"error": "missing or unknown X-API-KEY",
                                       "field": "X-API-KEY"})
        body: Any = None
        if function.method == "POST":
            try:
                body = json.loads(raw_body) if raw_body.strip() else None
            except (ValueError, UnicodeDecodeError):
                record.body = raw_body[:1_000].decode("utf-8", "replace")
                return self._decide(record, api_key, function, None, bad_json=True)
            if body is None:
                return self._decide(record, api_key, function, None, bad_json=True)
        record.body = body
        return self._decide(record, api_key, function, body)

    def _decide(self, record: _Record, api_key: str, function: Function, body: Any,
                bad_json: bool = False) -> Outcome:
        with self._lock:
            refused = self._roller.refusal(function.name, record.arrived)
            if refused is not None:
                # Authentication comes before the rate limit: a refused call is not counted.
                return record.answer(refused, {"error": "the API key was revoked",
                                               "field": "X-API-KEY"}, fault=Fault.AUTH,
                                     locked=True)
            window = self._windows.get(api_key)
            if window is None:
                window = self._windows[api_key] = _Window(*self._rate_limit)
            wait = window.admit(record.arrived)
            if wait is not None:
                # Real Optimove documents no Retry-After; the sandbox sends one (whole
                # seconds) so clients that honour it can be tested. Injected 429s send none.
                retry_after = str(max(1, int(wait + 0.999)))
                return record.answer(429, RATE_LIMIT_BODY, {"Retry-After": retry_after},
                                     locked=True)
            fault = self._roller.draw(function.name)
            injected = record.injected(fault)
            if injected is not None:
                return injected
            if bad_json:
                return record.answer(400, {"error": "the body must be JSON",
                                           "field": "body"}, locked=True)
            return self._apply(record, function, body, fault)

    def _apply(self, record: _Record, function: Function, body: Any,
               fault: Fault | None) -> Outcome:
        assert record.tenant is not None
        self._seq += 1
        seq = self._seq
        context = Context(seq, self.max_top, self.max_attribute_customers,
                          self.attributes_as_string, self._roller.plan, record.arrived)
        state = self._tenants[record.tenant]
        try:
            result = function.handle(state, Request(record.query_items, body), context)
        except Invalid as invalid:
            record.error = str(invalid)
            return record.answer(400, {"error": f"{invalid.field} {invalid.rule}",
                                       "field": invalid.field}, locked=True, seq=seq)
        payload = b"" if result is None else result if isinstance(result, bytes) else \
            _json(result)
        slow = self._roller.plan.slow_seconds if self._roller.plan else 0.0
        return record.answer(200, payload, fault=fault, applied=True, locked=True,
                             slow=slow if fault is not None else 0.0, seq=seq)

    # ---------------------------------------------------------------- saveEvent

    def save_event(self, *, path: str, host: str, headers: Mapping[str, str],
                   raw_body: bytes) -> Outcome:
        """Answer one saveEvent request (``headers`` with lower-case names)."""
        arrived, wall = time.monotonic(), datetime.now(UTC)
        tenant_id = metric.tenant_id_of(path, host)
        settings = self.metric_tenant(tenant_id) if tenant_id is not None else None
        record = _Record(self, arrived, wall, settings.name if settings else None, "POST",
                         path, [], SAVE_EVENT)
        try:
            record.body = json.loads(raw_body)
        except (ValueError, UnicodeDecodeError):
            record.body = raw_body[:1_000].decode("utf-8", "replace")
        if settings is None:
            return record.answer(404, json.loads(metric.answer(
                "error", f"no saveEvent for tenant ID {tenant_id} (host or path "
                "metric-<tenantID>)")))
        with self._lock:
            return self._save_locked(record, settings, headers, raw_body, wall)

    def _save_locked(self, record: _Record, settings: MetricTenant,
                     headers: Mapping[str, str], raw: bytes, wall: datetime) -> Outcome:
        def refuse(status: int, message: str, fault: Fault | None = None) -> Outcome:
            record.error = message
            return record.answer(status, metric.answer("error", message), fault=fault,
                                 locked=True)

        refused = self._roller.refusal(SAVE_EVENT, record.arrived)
        if refused is not None:
            return refuse(refused, "Failed to validate signature: the token was revoked",
                          Fault.AUTH)
        try:
            metric.check_signature(settings, headers, raw)
        except Refused as why:
            return refuse(why.status, why.message)
        key = f"metric-{settings.tenant_id}"
        window = self._windows.setdefault(key, _Window(*self._metric_rate_limit))
        if window.admit(record.arrived) is not None:
            return record.answer(429, RATE_LIMIT_BODY, locked=True)
        fault = self._roller.draw(SAVE_EVENT)
        injected = record.injected(fault)
        if injected is not None:
            return injected
        try:
            checked = metric.check_body(settings, raw, wall)
        except Refused as why:
            return refuse(why.status, why.message)
        self._seq += 1
        seq = self._seq
        state = self._tenants[settings.name]
        state.events += [ReceivedEvent(seq, *item) for item in checked]
        slow = self._roller.plan.slow_seconds if self._roller.plan else 0.0
        return record.answer(200, metric.answer("success", str(seq)), fault=fault,
                             applied=True, locked=True, slow=slow if fault else 0.0, seq=seq)

    def _journal_add(self, entry_args: dict[str, Any]) -> int:
        """Append a journal entry (lock held); its seq."""
        if entry_args.get("seq") is None:
            self._seq += 1
            entry_args["seq"] = self._seq
        self._journal.append(JournalEntry(**entry_args))
        return int(entry_args["seq"])


class _Record:
    """Collects what the journal says about one request, then builds its Outcome."""

    def __init__(self, sandbox: OptimoveSandbox, arrived: float, wall: datetime,
                 tenant: str | None, method: str, path: str,
                 query_items: list[tuple[str, str]], function: str) -> None:
        self.sandbox = sandbox
        self.arrived = arrived
        self.wall = wall
        self.tenant = tenant
        self.method = method
        self.path = path
        self.query_items = query_items
        self.query = dict(query_items)
        self.function = function
        self.body: Any = None
        self.error: str | None = None

    def answer(self, status: int, body: Any, headers: Mapping[str, str] | None = None, *,
               fault: Fault | None = None, applied: bool = False, locked: bool = False,
               slow: float = 0.0, seq: int | None = None) -> Outcome:
        entry = {"seq": seq, "monotonic": self.arrived,
                 "wall": self.wall, "tenant": self.tenant, "method": self.method,
                 "function": self.function, "path": self.path, "status": status,
                 "query": self.query, "body": self.body,
                 "fault": None if fault is None else str(fault), "applied": applied,
                 "error": self.error}
        if locked:
            self.sandbox._journal_add(entry)
        else:
            with self.sandbox._lock:
                self.sandbox._journal_add(entry)
        data = body if isinstance(body, bytes) else _json(body)
        return Outcome(status, data, headers or {}, fault, slow)

    def injected(self, fault: Fault | None) -> Outcome | None:
        """The answer of a fault that refuses the call unapplied (a 500, a 429 or an error
        body); None when the call goes on (no fault, or one that strikes after applying)."""
        if fault is Fault.ERROR:
            return self.answer(500, {"error": "injected internal error"}, fault=fault,
                               locked=True)
        if fault is Fault.RATE_LIMIT:
            return self.answer(429, RATE_LIMIT_BODY, fault=fault, locked=True)
        if fault is Fault.ERROR_BODY:
            return self.answer(200, INJECTED_ERROR_BODY, fault=fault, locked=True)
        return None
