"""Prometheus metrics at ``/metrics``.

Counts of durable facts (notifications, recipients pulled, report batches, backlogs) are read
from the store at scrape time by a custom collector, so the pipeline needs no instrumentation
and every replica exports the same numbers. What only this process sees (its HTTP calls to
Optimove and the platform, the callbacks it ingests) are ordinary counters.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from optibridge.config import Config
from optibridge.domain import BatchState, CreateState, LagState, WorkKind, WorkState
from optibridge.ratelimit import limiter_for
from optibridge.service.assembly import Service
from optibridge.store.status import Backlog, StatusStore

CALLBACK_PREFIX = "/callbacks/"
disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created: noise


@dataclass(frozen=True)
class Snapshot:
    """What the store held at one scrape."""

    notifications: dict[str, int]
    pulled: dict[str, int]
    batches: dict[tuple[str, str], int]
    backlogs: dict[str, Backlog]
    inbox_backlog: int
    callbacks: tuple[int, int]
    rate_in_use: dict[tuple[str, str], float]
    readback: dict[str, LagState] = field(default_factory=dict)
    paused: dict[str, int] = field(default_factory=dict)  # reporting paused (this process)
    work: dict[tuple[str, str, str], int] = field(default_factory=dict)
    leftovers: dict[tuple[str, str], int] = field(default_factory=dict)  # platform creates
    at: float = field(default_factory=time.time)


async def take_snapshot(service: Service) -> Snapshot:
    store: StatusStore = service.store
    tenants = list(service.config.tenants)
    return Snapshot(
        notifications=await store.notification_counts(),
        pulled=await store.recipients_pulled(),
        batches=await store.batch_state_counts(),
        backlogs={name: await store.report_backlog(name) for name in tenants},
        inbox_backlog=await service.store.inbox_backlog(),
        callbacks=await store.callbacks_received(),
        rate_in_use=rate_limits_in_use(service),
        readback={lag.tenant: lag for lag in await service.store.readback_lags()},
        paused={name: int(ctx.report_pause.paused) for name, ctx in service.contexts.items()},
        work=await service.store.work_failure_counts(),
        leftovers=await service.store.create_counts())


def rate_limits_in_use(service: Service) -> dict[tuple[str, str], float]:
    """Share of each tenant's Optimove and platform rate limit used in the last window."""
    shares: dict[tuple[str, str], float] = {}
    for name, tenant in service.config.tenants.items():
        limiter = service.limiters.get(name)
        if limiter is not None:
            shares[(name, "optimove")] = limiter.in_use()
        limit = tenant.platform.rate_limit
        shares[(name, "platform")] = limiter_for(
            tenant.platform.key(), limit.requests, limit.per_seconds).in_use()
    return shares


class StoreCollector(Collector):
    """Yields the last snapshot; ``/metrics`` refreshes it just before each scrape."""

    def __init__(self, tenants: list[str]) -> None:
        self.tenants = tenants
        self.snapshot: Snapshot | None = None

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        if snap is None:
            return
        yield _per_tenant(CounterMetricFamily, "optibridge_notifications_received",
                          "Optimove listener calls recorded", snap.notifications, self.tenants)
        yield _per_tenant(CounterMetricFamily, "optibridge_recipients_pulled",
                          "Customers pulled from Optimove", snap.pulled, self.tenants)
        yield self._batches(snap)
        yield _per_tenant(GaugeMetricFamily, "optibridge_report_backlog",
                          "Interactions not yet in a sent report batch",
                          {t: b.count for t, b in snap.backlogs.items()}, self.tenants)
        yield _per_tenant(GaugeMetricFamily, "optibridge_report_backlog_age_seconds",
                          "Age of the oldest interaction not yet reported",
                          {t: b.age(snap.at) for t, b in snap.backlogs.items()}, self.tenants)
        yield _per_tenant(GaugeMetricFamily, "optibridge_reporting_paused",
                          "1 while reporting is paused after a recoverable error (a revoked "
                          "key, a proxy, 429, 5xx), as the lease holder sees it",
                          snap.paused, self.tenants)
        yield GaugeMetricFamily("optibridge_callback_inbox_backlog",
                                "Stored callbacks not yet mapped to interactions",
                                value=snap.inbox_backlog)
        yield CounterMetricFamily("optibridge_callback_events_stored",
                                  "Events carried by the stored callbacks",
                                  value=snap.callbacks[1])
        share = GaugeMetricFamily("optibridge_rate_limit_in_use_ratio",
                                  "Share of the rate limit used in the last window",
                                  labels=["tenant", "api"])
        for (tenant, api), value in sorted(snap.rate_in_use.items()):
            share.add_metric([tenant, api], value)
        yield share
        yield from _readback(snap, self.tenants)
        yield self._work(snap)
        yield self._leftovers(snap)

    def _work(self, snap: Snapshot) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "optibridge_work_failures", "Items of background work that failed, by kind and "
            "state (retrying: backing off; stopped: waits for `optibridge work requeue`)",
            labels=["tenant", "kind", "state"])
        for tenant in self.tenants:
            for kind in WorkKind:
                for state in WorkState:
                    family.add_metric([tenant, str(kind), str(state)],
                                      snap.work.get((tenant, kind, state), 0))
        return family

    def _leftovers(self, snap: Snapshot) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "optibridge_platform_creates_unsettled", "Creates on the platform whose answer "
            "was lost and whose object is not yet found and deleted (held: waits for "
            "`optibridge work leftovers`)", labels=["tenant", "state"])
        for tenant in self.tenants:
            for state in (CreateState.ASKING, CreateState.LOST, CreateState.ORPHAN,
                          CreateState.HELD):
                family.add_metric([tenant, str(state)], snap.leftovers.get((tenant, state), 0))
        return family

    def _batches(self, snap: Snapshot) -> GaugeMetricFamily:
        family = GaugeMetricFamily("optibridge_report_batches",
                                   "UpdateCampaignInteractions batches by state",
                                   labels=["tenant", "state"])
        for tenant in self.tenants:
            for state in BatchState:
                family.add_metric([tenant, str(state)], snap.batches.get((tenant, state), 0))
        return family


def _readback(snap: Snapshot, tenants: list[str]) -> Iterator[Metric]:
    """Whether in-doubt batches can be resolved, and how late read-back was last seen."""
    yield _per_tenant(GaugeMetricFamily, "optibridge_readback_usable",
                      "1 while GetCustomerChannelInteractions can resolve in-doubt batches, "
                      "0 while they are held",
                      {t: int(lag.unusable is None) for t, lag in snap.readback.items()}
                      | {t: 1 for t in tenants if t not in snap.readback}, tenants)
    yield _per_tenant(GaugeMetricFamily, "optibridge_readback_lag_seconds",
                      "How late an applied call last showed in read-back (learned)",
                      {t: lag.lag_seconds for t, lag in snap.readback.items()
                       if lag.lag_seconds is not None}, tenants)


def _per_tenant(kind: type[CounterMetricFamily] | type[GaugeMetricFamily], name: str,
                documentation: str, values: dict[str, int] | dict[str, float],
                tenants: list[str]) -> Metric:
    family = kind(name, documentation, labels=["tenant"])
    for tenant in sorted(set(tenants) | set(values)):
        family.add_metric([tenant], values.get(tenant, 0))
    return family


class Metrics:
    """One app's registry: the store collector and this process's counters."""

    def __init__(self, config: Config) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.tenants = list(config.tenants)
        self.store = StoreCollector(self.tenants)
        self.registry.register(self.store)
        self.calls = Counter("optibridge_api_calls", "HTTP calls to Optimove and the platform",
                             ["api", "call", "status"], registry=self.registry)
        self.rate_limited = Counter("optibridge_api_rate_limited",
                                    "Calls answered 429", ["api"], registry=self.registry)
        self.retries = Counter("optibridge_api_retries",
                               "Attempts that repeated a failed call", ["api", "call"],
                               registry=self.registry)
        self.callbacks = Counter("optibridge_callbacks_received",
                                 "Platform callbacks answered, by tenant and HTTP status",
                                 ["tenant", "status"], registry=self.registry)
        self.callback_seconds = Histogram(
            "optibridge_callback_duration_seconds", "Time to verify and store a callback",
            ["tenant"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        # Each (tenant, status)'s two series, looked up once, not by ``labels`` (a lock
        # and a tuple of strings) on every callback.
        self._callback_series: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def observe_call(self, api: str, call: str, status: str, retried: bool) -> None:
        """The ``optibridge.observe`` hook: one HTTP attempt of a client."""
        self.calls.labels(api, call, status).inc()
        if status == "429":
            self.rate_limited.labels(api).inc()
        if retried:
            self.retries.labels(api, call).inc()

    def observe_callback(self, tenant: str, status: int, seconds: float) -> None:
        label = tenant if tenant in self.tenants else "unknown"
        series = self._callback_series.get((label, status))
        if series is None:
            series = self._callback_series[(label, status)] = (
                self.callbacks.labels(label, str(status)), self.callback_seconds.labels(label))
        series[0].inc()
        series[1].observe(seconds)

    async def render(self, service: Service) -> bytes:
        self.store.snapshot = await take_snapshot(service)
        return generate_latest(self.registry)


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    body = await metrics.render(request.app.state.service)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class CallbackTimer:
    """ASGI middleware: counts and times the callback route (ingestion rate and latency)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not path.startswith(CALLBACK_PREFIX):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            tenant = path[len(CALLBACK_PREFIX):].split("/", 1)[0]
            self.metrics.observe_callback(tenant, status, time.perf_counter() - started)
