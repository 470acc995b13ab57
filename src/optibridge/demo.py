"""``optibridge demo``: both sandboxes and the service on loopback, one campaign end to end,
and a reconciliation of what the platform emitted against what reached Optimove.

The same ``Rehearsal`` drives the end-to-end, fault and crash tests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import os
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from optibridge.config import Config, parse_config
from optibridge.domain import ChannelType
from optibridge.optimove.client import OptimoveClient
from optibridge.optimove.models import InteractionEvent, Metric
from optibridge.pipeline.progress import Progress, progress
from optibridge.sandbox.gcs import GcsEmulator
from optibridge.sandbox.gcs import create_app as gcs_app
from optibridge.sandbox.optimove import (
    AudienceRow,
    EngagementPublisher,
    FaultPlan,
    MetricTenant,
    OptimoveSandbox,
    Published,
)
from optibridge.sandbox.optimove import create_app as optimove_app
from optibridge.sandbox.platform import EventRates, PlatformFaults, PlatformSandbox
from optibridge.sandbox.platform import create_app as platform_app
from optibridge.serving import RunningServer, reserve_port, start_server, wait_for_port
from optibridge.store import Database, Store

TENANT = "demo"
EMAIL_CHANNEL, SMS_CHANNEL = 504, 505
EMAIL_CAMPAIGN, SMS_CAMPAIGN = 1001, 1002
OPTIMOVE_KEY = "demo-optimove-key-0123456789"
PLATFORM_KEY = "demo-platform-key-0123456789"
SIGNING_SECRET = "demo-signing-secret-0123456789abcdef"  # noqa: S105 (loopback demo only)
METRIC_TOKEN = "demo-metric-token-0123456789"  # noqa: S105 (loopback demo only)
METRIC_TENANT_ID = 1000
# saveEvent's batch limit is not public; the demo sends 1,000 events a call (the default
# batch_size is 100) so 10,000 customers' events fit in its run time at 50 calls per 10 s.
METRIC_BATCH = 1_000
EVENTS = ("submitted", "delivered", "bounced", "opened", "clicked", "dropped")
SMS_SENT = "sms sent"  # SMS has no submitted event: its Sent metric is delivered + bounced
INTERACTION_ID = {"bounced": InteractionEvent.BOUNCED, "opened": InteractionEvent.OPENED,
                  "clicked": InteractionEvent.CLICKED, "dropped": InteractionEvent.DROPPED}
METRIC_ID = {"submitted": Metric.SENT, "delivered": Metric.DELIVERED,
             "bounced": Metric.BOUNCED, "opened": Metric.OPENED, "clicked": Metric.CLICKED,
             "dropped": Metric.DROPPED}


@dataclass
class Customer:
    customer_id: str
    channel_id: int
    template_id: int
    scheduled_time: dt.datetime
    address: str | None
    first_name: str


@dataclass(frozen=True)
class ReconciliationRow:
    event: str
    emitted: int  # by the platform (dropped: whoever it could not or did not send to)
    stored: int
    reported: int | None  # customers Optimove holds via UpdateCampaignInteractions
    duplicates: int | None
    metric: int  # UpdateCampaignMetrics running total Optimove holds
    read_back: str  # sample read back with GetCustomerChannelInteractions: "k/n"

    @property
    def matches(self) -> bool:
        same = self.emitted == self.stored == self.metric
        if self.reported is not None:
            same = same and self.reported == self.stored and self.duplicates == 0
        sample_ok = True
        if self.read_back and "/" in self.read_back:
            got, want = self.read_back.split("/")
            sample_ok = got == want
        return same and sample_ok


def keep_out_of_collections() -> None:
    """Keep what this process holds now out of the cyclic collector's passes.

    The sandboxes hold every customer and contact as Python objects in this process. A full
    pass of the collector over them stops the process, and with it both emulators, for
    seconds (0.9 s with 2,000,000 customers loaded; about ten times the objects by the end
    of a 10,000,000-customer campaign): pauses that Optimove and the platform do not have,
    and long enough for PostgreSQL to end this process's progress read as idle in its
    transaction. Audiences and contacts live as long as the rehearsal; the few cycles
    frozen with them are kept until it closes (``hand_back_to_collections``).
    """
    gc.freeze()


def hand_back_to_collections() -> None:
    """Give what ``keep_out_of_collections`` froze back to the collector: frozen cycles
    are never freed, and a closed rehearsal's sandboxes, reachable from such cycles,
    stayed in the process with every customer and contact."""
    gc.unfreeze()


@dataclass
class Rehearsal:
    """Everything of one demo run: sandboxes, the service, the audience, the checks."""

    customers: int = 10_000
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="optibridge-")))
    database_url: str | None = None
    callback_window: float = 1.0
    optimove_faults: FaultPlan | None = None
    platform_faults: PlatformFaults | None = None
    seed: int = 7
    service_mode: str = "thread"  # or "process" for crash and replica tests
    page_size: int = 10_000
    rate_limit: tuple[int, float] = (50, 10.0)
    lease_ttl: float = 20.0
    send_delay: float = 0.0  # seconds to push both send times into the future
    callback_margin: float = 1.0  # quiet seconds after the window before Dropped is decided
    audience_source: str = "rest"  # or "files": EventTypeID 14, Avro files on a GCS emulator
    file_size: int = 10_000  # customers per Avro file (Optimove's UI allows 10K-100K)
    gcs: GcsEmulator | None = field(init=False, default=None)
    publisher: EngagementPublisher | None = field(init=False, default=None)
    published: list[Published] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)  # more [timing] settings
    optimove: OptimoveSandbox = field(init=False)
    platform: PlatformSandbox = field(init=False)
    servers: list[RunningServer] = field(default_factory=list)
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    reserved: dict[int, socket.socket] = field(default_factory=dict)  # ports not yet served
    audience: list[Customer] = field(default_factory=list)
    config: Config = field(init=False)
    service_port: int = 0
    gcs_server: RunningServer | None = field(init=False, default=None)
    reporting: str = "interactions"  # or "engagement_events": saveEvent
    engagement_events: dict[str, Any] = field(default_factory=dict)  # more of its settings
    admin_token: str | None = None  # the service's; without one it answers loopback only

    # ---- set-up ------------------------------------------------------------------------
    def start_sandboxes(self) -> None:
        self.optimove = OptimoveSandbox(
            {OPTIMOVE_KEY: TENANT}, seed=self.seed, faults=self.optimove_faults,
            rate_limit=self.rate_limit, metric_rate_limit=self.rate_limit,
            metric_tenants=[MetricTenant(TENANT, METRIC_TENANT_ID, METRIC_TOKEN,
                                         max_batch=METRIC_BATCH)])
        self.platform = PlatformSandbox([PLATFORM_KEY], seed=self.seed,
                                        callback_window=self.callback_window, tick=0.05,
                                        rates=EventRates(), faults=self.platform_faults)
        self.servers.append(start_server(optimove_app(self.optimove)))
        self.servers.append(start_server(platform_app(self.platform)))
        if self.audience_source == "files":
            self.gcs = GcsEmulator(self.workdir / "gcs")
            self.publisher = EngagementPublisher(self.gcs)
            self.gcs_server = start_server(gcs_app(self.gcs))
        self.service_port = self.new_port()
        self.config = self._config()

    def new_port(self) -> int:
        """A loopback port held for a service of this rehearsal until it listens there (a
        port only chosen free could be taken by another process before it is served)."""
        sock = reserve_port()
        port: int = sock.getsockname()[1]
        self.reserved[port] = sock
        return port

    def _port_socket(self, port: int) -> socket.socket:
        """The held socket of ``port``; bound again if a killed service had it."""
        return self.reserved.pop(port, None) or reserve_port(port=port)

    @property
    def optimove_url(self) -> str:
        return self.servers[0].url

    @property
    def platform_url(self) -> str:
        return self.servers[1].url

    @property
    def service_url(self) -> str:
        return f"http://127.0.0.1:{self.service_port}"

    def config_data(self) -> dict[str, Any]:
        database = self.database_url or f"sqlite:///{self.workdir / 'optibridge.db'}"
        return {
            "server": {"listen": f"127.0.0.1:{self.service_port}",
                       "public_url": self.service_url, "database_url": database,
                       "signing_secret_env": "OPTIBRIDGE_DEMO_SECRET", "log_format": "json",
                       **({} if self.admin_token is None
                          else {"admin_token_env": "OPTIBRIDGE_DEMO_ADMIN_TOKEN"})},
            "timing": {"idle": 0.1, "in_doubt_wait": 0.5, "follow_min": 0.3, "follow_max": 2.0,
                       "callback_margin": self.callback_margin,
                       "lease_ttl": self.lease_ttl, **self.timing},
            "tenants": {TENANT: {
                "optimove_url": self.optimove_url, "api_key_env": "OPTIBRIDGE_DEMO_OPTIMOVE_KEY",
                "page_size": self.page_size, "report_interval_seconds": 1.0,
                "rate_limit": {"requests": self.rate_limit[0],
                               "per_seconds": self.rate_limit[1]},
                "callback_window_seconds": self.callback_window,
                "channels": {
                    str(EMAIL_CHANNEL): {"type": "email", "address_attribute": "Email",
                                         "personalization": ["FirstName"],
                                         "personalization_defaults": {"FirstName": "friend"}},
                    str(SMS_CHANNEL): {"type": "sms", "address_attribute": "Phone",
                                       "personalization": ["FirstName"],
                                       "personalization_defaults": {"FirstName": "friend"}},
                },
                "platform": {"base_url": self.platform_url,
                             "api_key_env": "OPTIBRIDGE_DEMO_PLATFORM_KEY",
                             "bounce_domain": 1,
                             "rate_limit": {"requests": 1000, "per_seconds": 1.0}},
                **self._files_config(),
                "reporting": self.reporting,
                "engagement_events": {
                    "tenant_id": METRIC_TENANT_ID, "token_env": "OPTIBRIDGE_DEMO_METRIC_TOKEN",
                    "url": self.optimove_url + "/metric-{tenant_id}/api/saveEvent",
                    "batch_size": METRIC_BATCH,
                    "rate_limit": {"requests": self.rate_limit[0],
                                   "per_seconds": self.rate_limit[1]},
                    **self.engagement_events},
            }},
        }

    def _files_config(self) -> dict[str, Any]:
        if self.gcs_server is None or self.publisher is None:
            return {}
        return {"files": {"endpoint": self.gcs_server.url, "anonymous": True,
                          "optimove_tenant_id": self.publisher.tenant_id}}

    def environment(self) -> dict[str, str]:
        return {"OPTIBRIDGE_DEMO_SECRET": SIGNING_SECRET,
                "OPTIBRIDGE_DEMO_OPTIMOVE_KEY": OPTIMOVE_KEY,
                "OPTIBRIDGE_DEMO_PLATFORM_KEY": PLATFORM_KEY,
                "OPTIBRIDGE_DEMO_METRIC_TOKEN": METRIC_TOKEN,
                **({} if self.admin_token is None
                   else {"OPTIBRIDGE_DEMO_ADMIN_TOKEN": self.admin_token})}

    def _config(self) -> Config:
        return parse_config(self.config_data(), "demo", environ=self.environment())

    def write_config(self) -> Path:
        """The demo's config as a TOML file (for a service in another process)."""
        path = self.workdir / "optibridge.toml"
        path.write_text(tomli_w.dumps(self.config_data()))
        return path

    def start_service(self) -> None:
        if self.service_mode == "process":
            self.start_process(self.service_port)
            return
        from optibridge.service.app import create_app

        app = create_app(self.config, takeover_wait=False)
        self.servers.append(start_server(app, sock=self._port_socket(self.service_port)))

    def start_process(self, port: int) -> subprocess.Popen[bytes]:
        """``optibridge serve`` in its own process listening on ``port`` (so a test can
        kill -9 it, or run several replicas on one database)."""
        path = self.write_config()
        env = {**os.environ, **self.environment(),
               "OPTIBRIDGE__SERVER__LISTEN": f"127.0.0.1:{port}"}
        log = (self.workdir / f"service-{port}.log").open("ab")
        # The process listens on the port's held socket; this process lets go of it, so
        # that once the process is killed the port refuses connections, as a dead pod's.
        with self._port_socket(port) as sock:
            process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                [sys.executable, "-m", "optibridge", "serve", "-c", str(path),
                 "--fd", str(sock.fileno())], env=env, stdout=log, stderr=log,
                pass_fds=(sock.fileno(),))
        log.close()
        self.processes[port] = process
        wait_for_port(port, process)
        return process

    def kill(self, port: int) -> None:
        """kill -9 the service process on ``port``."""
        process = self.processes.pop(port)
        process.kill()
        process.wait(30)

    def stop_service(self) -> None:
        if self.processes:
            for process in self.processes.values():
                process.terminate()
            for process in self.processes.values():
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:  # a shutdown that hangs: said, then ended
                    print(f"optibridge serve (pid {process.pid}) did not stop within 30 s "
                          "of SIGTERM: killed", file=sys.stderr)
                    process.kill()
                    process.wait(30)
            self.processes.clear()
        elif len(self.servers) > 2:
            self.servers.pop().stop()

    def register_and_load(self) -> None:
        gc.collect()  # an earlier rehearsal's cycles, before they could be frozen with ours
        self._load()
        keep_out_of_collections()

    def _load(self) -> None:
        asyncio.run(self._register())
        email_templates = [self.platform.add_template(f"Welcome {n}", ChannelType.EMAIL,
                                                      f"<p>Hello {{{{FirstName}}}}, offer {n}</p>")
                           for n in ("A", "B")]
        sms_template = self.platform.add_template("Reminder", ChannelType.SMS,
                                                  "Hi {{FirstName}}, your reminder")
        now = (dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
               + dt.timedelta(seconds=self.send_delay))
        times = [now - dt.timedelta(seconds=5), now + dt.timedelta(seconds=3)]
        self.audience = list(make_audience(self.customers, email_templates, sms_template,
                                           times, self.seed))
        if self.audience_source == "files":
            self._publish(times[0])
            return
        for channel_id, campaign_id in ((EMAIL_CHANNEL, EMAIL_CAMPAIGN),
                                        (SMS_CHANNEL, SMS_CAMPAIGN)):
            rows = [AudienceRow(c.customer_id, c.template_id, c.scheduled_time,
                                {"Email" if channel_id == EMAIL_CHANNEL else "Phone": c.address,
                                 "FirstName": c.first_name})
                    for c in self.audience if c.channel_id == channel_id]
            self.optimove.load_audience(TENANT, campaign_id, channel_id, rows)

    def _publish(self, when: dt.datetime) -> None:
        """EventTypeID 14 carries one TemplateID and ScheduledTime per campaign and channel
        (its metadata file): each channel's customers get its first template and time."""
        assert self.publisher is not None
        for channel_id, campaign_id, name in ((EMAIL_CHANNEL, EMAIL_CAMPAIGN, "Email"),
                                              (SMS_CHANNEL, SMS_CAMPAIGN, "Phone")):
            chosen = [c for c in self.audience if c.channel_id == channel_id]
            template = min(c.template_id for c in chosen)
            for customer in chosen:
                customer.template_id, customer.scheduled_time = template, when
            self.published.append(self.publisher.publish(
                campaign_id=campaign_id, channel_id=channel_id, template_id=template,
                scheduled_time=when, fields=[name, "FirstName"], file_size=self.file_size,
                customers=({"CustomerID": c.customer_id, name: c.address,
                            "FirstName": c.first_name} for c in chosen)))

    async def _register(self) -> None:
        from optibridge.pipeline.listener import register_listeners

        async with OptimoveClient.from_tenant(self.config.tenant(TENANT)) as client:
            await register_listeners(self.config, TENANT, client)

    def fire(self) -> list[int]:
        if self.publisher is not None:
            from optibridge.pipeline.listener import listener_url

            url = listener_url(self.config, TENANT)
            return [self.publisher.fire(url, published) for published in self.published]
        statuses = []
        for channel_id, campaign_id in ((EMAIL_CHANNEL, EMAIL_CAMPAIGN),
                                        (SMS_CHANNEL, SMS_CAMPAIGN)):
            statuses += self.optimove.notify(TENANT, 13, campaign_id=campaign_id,
                                             channel_id=channel_id)
        return statuses

    # ---- waiting -----------------------------------------------------------------------
    async def progress(self) -> Progress:
        store = Store(Database(self.config.server.database_url))
        try:
            return await progress(store, TENANT, self.config.tenant(TENANT))
        finally:
            await store.db.dispose()

    async def wait_settled(self, within: float, on_progress: Callable[[Progress], None]
                           | None = None, poll: float = 0.5) -> Progress:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            current = await self.progress()
            if on_progress is not None:
                on_progress(current)
            if current.settled and current.sends > 0 and self.platform.idle():
                return current
            dead = [port for port, p in self.processes.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"the service on port(s) {dead} exited; see "
                                   f"{self.workdir}/service-PORT.log")
            if loop.time() > deadline:
                raise TimeoutError(f"not settled after {within:.0f} s: {current}")
            keep_out_of_collections()  # the platform's contacts, as they come
            await asyncio.sleep(poll)

    # ---- checking ----------------------------------------------------------------------
    async def reconcile(self, sample: int = 20) -> list[ReconciliationRow]:
        store = Store(Database(self.config.server.database_url))
        try:
            stored = await store.event_counts(TENANT)
            sms = await store.event_counts(TENANT, channel_id=SMS_CHANNEL)
        finally:
            await store.db.dispose()
        emitted = self.emitted()
        counts = self.optimove.interaction_counts(TENANT)
        events = self._event_counts()
        metrics, sms_metrics = Counter[int](), Counter[int]()
        for (_, channel_id, _, metric_id), value in self.optimove.metrics(TENANT).items():
            (sms_metrics if channel_id == SMS_CHANNEL else metrics)[metric_id] += value
        read_back = await self.read_back(sample)
        rows = []
        for event in EVENTS:
            reported = duplicates = None
            if self.reporting == "engagement_events":
                reported, duplicates = events.get(event, (0, 0))
            elif event in INTERACTION_ID:
                keys = [k for k in counts if k[3] == INTERACTION_ID[event]]
                reported = len(keys)
                duplicates = sum(counts[k] - 1 for k in keys)
            metric = metrics[METRIC_ID[event]]
            if event != "submitted":
                metric += sms_metrics[METRIC_ID[event]]
            rows.append(ReconciliationRow(
                event=event, emitted=emitted[event], stored=stored.get(event, (0, 0))[0],
                reported=reported, duplicates=duplicates, metric=metric,
                read_back=read_back.get(event, "")))
        sms_stored = sum(sms.get(e, (0, 0))[0] for e in ("delivered", "bounced"))
        rows.append(ReconciliationRow(
            event=SMS_SENT, emitted=emitted[SMS_SENT], stored=sms_stored, reported=None,
            duplicates=None, metric=sms_metrics[Metric.SENT], read_back=""))
        return rows

    def _event_counts(self) -> dict[str, tuple[int, int]]:
        """Per our event: (events saveEvent holds, of which repeats), by the demo's names."""
        ours = {name: event for event, name in
                self.config.tenant(TENANT).engagement_events.events if name}
        found: dict[str, tuple[int, int]] = {}
        for (name, _, _, _), times in self.optimove.event_counts(TENANT).items():
            held, repeats = found.get(ours.get(name, name), (0, 0))
            found[ours.get(name, name)] = (held + 1, repeats + times - 1)
        return found

    def emitted(self) -> Counter[str]:
        """What the platform emitted (its ground truth); Dropped is everyone it did not
        send to: no usable address, or no sent event."""
        truth = self.platform.ground_truth()
        emitted = Counter(event for _, event, _, _ in truth)
        emitted[SMS_SENT] = sum(1 for _, event, address, _ in truth
                                if address.startswith("+") and event in ("delivered", "bounced"))
        proof = {"email": {"submitted"}, "sms": {"delivered", "bounced"}}
        sent = {(address, event) for _, event, address, _ in truth}
        dropped = 0
        for customer in self.audience:
            kind = "email" if customer.channel_id == EMAIL_CHANNEL else "sms"
            if customer.address is None or not any(
                    (customer.address, e) in sent for e in proof[kind]):
                dropped += 1
        emitted["dropped"] = dropped
        return emitted

    async def read_back(self, sample: int) -> dict[str, str]:
        """Read back a sample of customers through the API and compare with Optimove's
        state: k/n customers whose rows match."""
        if sample <= 0:
            return {}
        reported = self.optimove.reported_interactions(TENANT)
        by_customer: dict[str, list[Any]] = {}
        for row in reported:
            by_customer.setdefault(row.customer_id, []).append(row)
        chosen = sorted(by_customer)[:: max(1, len(by_customer) // sample)][:sample]
        agree: Counter[str] = Counter()
        total: Counter[str] = Counter()
        async with OptimoveClient.from_tenant(self.config.tenant(TENANT)) as client:
            for customer_id in chosen:
                rows = by_customer[customer_id]
                day = min(r.interaction_date for r in rows)
                last = max(r.interaction_date for r in rows)
                got = await client.get_customer_channel_interactions(customer_id, day, last)
                for event, event_id in INTERACTION_ID.items():
                    want = sum(1 for r in rows if r.event_id == event_id)
                    have = sum(1 for r in got if r.event_id == event_id)
                    if want:
                        total[event] += 1
                        agree[event] += want == have
        return {event: f"{agree[event]}/{total[event]}" for event in total}

    def close(self) -> None:
        self.stop_service()
        for sock in self.reserved.values():
            sock.close()
        self.reserved.clear()
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()
        if self.gcs_server is not None:
            self.gcs_server.stop()
            self.gcs_server = None
        hand_back_to_collections()


def make_audience(count: int, email_templates: list[int], sms_template: int,
                  times: list[dt.datetime], seed: int) -> Iterator[Customer]:
    """Four email sends (two templates x two times) and two SMS sends; one customer in 200
    has no usable address and must come back as Dropped."""
    import random

    rng = random.Random(seed)
    names = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Linus"]
    for i in range(count):
        customer_id = f"C{i:08d}"
        email = i % 5 != 0
        missing = i % 200 == 7
        if email:
            address = None if missing else f"customer{i}@example.com"
            template = email_templates[i % 2]
        else:
            address = None if missing else f"+4477{i:08d}"
            template = sms_template
        yield Customer(customer_id, EMAIL_CHANNEL if email else SMS_CHANNEL, template,
                       times[(i // 2) % 2], address, rng.choice(names))
