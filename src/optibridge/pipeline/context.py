"""What a tenant's pipeline steps work with: its config, its two clients and the store."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog

from optibridge.config import Config, TenantConfig, TimingConfig
from optibridge.domain import WorkRetry
from optibridge.offload import INLINE, Offload
from optibridge.optimove.client import OptimoveClient
from optibridge.optimove.events import EngagementEventsClient
from optibridge.pipeline.lease import LeasedWindow
from optibridge.pipeline.nudges import Nudges
from optibridge.pipeline.pause import Pause
from optibridge.pipeline.pull_first import PullFirst
from optibridge.platform.api import Platform
from optibridge.signing import UrlSigner
from optibridge.store import Store


@dataclass
class TenantContext:
    name: str
    tenant: TenantConfig
    config: Config
    store: Store
    optimove: OptimoveClient
    platform: Platform
    signer: UrlSigner
    timing: TimingConfig = field(default_factory=TimingConfig)
    # Send state changes that must not interleave (execution's READY step vs cancellation).
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    nudges: Nudges = field(default_factory=Nudges)
    # When this process started the tenant's work: callbacks the platform could not deliver
    # while no process was listening arrive only after, by the platform's retries.
    started_at: float = 0.0
    flagged_sends: set[int] = field(default_factory=set)  # stuck SENDING, already reported
    # Finished sends waiting for their callbacks' quiet period: send -> not over before.
    quiet_until: dict[int, float] = field(default_factory=dict)
    metrics_reported_at: float = 0.0
    lease: LeasedWindow | None = None  # None outside ``serve`` (CLI commands)
    report_pause: Pause = field(default_factory=Pause)
    events: EngagementEventsClient | None = None  # saveEvent, when a token is configured
    # saveEvent batches held in doubt whose problem is recorded: (batch, since when)
    held_batches: set[tuple[int, float]] = field(default_factory=set)
    waiting_for_token: bool = False  # saveEvent batches wait for a token: problem recorded
    offload: Offload = INLINE  # where audience pages are decoded (the service's processes)
    # A pulled page is stored before an upload beside the pull takes the loop; only where
    # the store's writes take turns (see PullFirst), so it follows from the store.
    pull_first: PullFirst = field(init=False)

    def __post_init__(self) -> None:
        self.pull_first = PullFirst(hold=self.store.writes_take_turns)

    @property
    def work_retry(self) -> WorkRetry:
        """The back-off of a failing item of work (``pipeline.work``)."""
        timing = self.timing
        return WorkRetry(timing.retry_first, timing.retry_longest, timing.max_refusals)

    @property
    def epoch(self) -> int | None:
        """The lease epoch this process's writes carry (None: not under a lease; 0, which
        every write refuses, once the lease is lost)."""
        return self.lease.epoch if self.lease is not None else None

    @property
    def actor(self) -> str:
        """Who this process is, in a batch's history."""
        return self.lease.holder if self.lease is not None else "cli"

    @property
    def log(self) -> structlog.stdlib.BoundLogger:
        logger: structlog.stdlib.BoundLogger = structlog.get_logger("optibridge").bind(
            tenant=self.name)
        return logger

