"""``PlatformSandbox``: the REST resources, the sending clock and callback delivery under one lock.

Thread safety: the HTTP app and the sender run in uvicorn's thread, tests drive and inspect
from theirs; every call into the parts holds ``self._lock``. Nothing awaits under the lock.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import date
from typing import Any, Generic, TypeVar

import httpx

from optibridge.sandbox.platform.clock import SendingClock
from optibridge.sandbox.platform.contract import Channel
from optibridge.sandbox.platform.delivery import CallbackDelivery, post
from optibridge.sandbox.platform.model import (
    CallbackAttempt,
    EventRates,
    FaultDice,
    PlatformFaults,
    SandboxCampaign,
    SandboxContact,
    Settings,
)
from optibridge.sandbox.platform.resources import Resources

T = TypeVar("T")


class _Setting(Generic[T]):
    """An attribute of ``PlatformSandbox`` kept in its shared ``Settings`` (tests tune them)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, sandbox: PlatformSandbox, owner: type | None = None) -> T:
        value: T = getattr(sandbox.settings, self.name)
        return value

    def __set__(self, sandbox: PlatformSandbox, value: T) -> None:
        setattr(sandbox.settings, self.name, value)


class PlatformSandbox:
    """See the package docstring; all public methods are thread-safe."""

    seed: _Setting[int] = _Setting()
    callback_window: _Setting[float] = _Setting()
    tick: _Setting[float] = _Setting()
    rates: _Setting[EventRates] = _Setting()
    max_addresses_per_callback: _Setting[int] = _Setting()
    callback_retry: _Setting[float] = _Setting()
    callback_attempts: _Setting[int] = _Setting()
    scattered_ids: _Setting[bool] = _Setting()

    def __init__(self, api_keys: Iterable[str], *, seed: int = 0, callback_window: float = 300.0,
                 tick: float = 0.05, rates: EventRates | None = None,
                 faults: PlatformFaults | None = None,
                 max_addresses_per_callback: int = 100_000, callback_retry: float = 0.2,
                 callback_attempts: int = 20, scattered_ids: bool = False) -> None:
        self.api_keys = frozenset(api_keys)
        self.settings = Settings(seed, callback_window, tick, rates or EventRates(),
                                 max_addresses_per_callback, callback_retry, callback_attempts,
                                 scattered_ids)
        self._lock = threading.Lock()
        self._dice = FaultDice(faults, seed)
        self._resources = Resources(self.settings)
        self._delivery = CallbackDelivery(self.settings, self._dice)
        self._clock = SendingClock(self._resources, self._delivery, self.settings, self._dice)

    def _locked(self, call: Callable[..., T], *args: Any) -> T:
        with self._lock:
            return call(*args)

    # -- Python API for tests and the demo -------------------------------------------------

    def set_faults(self, faults: PlatformFaults | None) -> None:
        self._locked(self._dice.set, faults, self.settings.seed)

    @property
    def faults(self) -> PlatformFaults | None:
        return self._dice.faults

    def add_template(self, name: str, type: Channel | str, body: str) -> int:
        return self._locked(self._resources.add_template, name, type, body)

    def rename_template(self, template_id: int, name: str) -> None:
        self._locked(self._resources.rename_template, template_id, name)

    def delete_template(self, template_id: int) -> None:
        self._locked(self._resources.delete_template, template_id)

    def ground_truth(self) -> set[tuple[int, str, str, date]]:
        """Every unique (campaign id, event, address, UTC date of the callback's `when`) the
        sender produced, whether or not its callback got through."""
        return self._locked(self._clock.ground_truth)

    def campaigns(self) -> list[SandboxCampaign]:
        with self._lock:
            return [self._clock.progress(c) for c in self._resources.campaigns.values()]

    def campaign(self, campaign_id: int) -> SandboxCampaign:
        """KeyError if unknown."""
        with self._lock:
            return self._clock.progress(self._resources.campaigns[campaign_id])

    def lists(self) -> dict[int, str]:
        """Every contact list: ID -> name."""
        return self._locked(self._resources.list_names)

    def contacts(self, list_id: int) -> list[SandboxContact]:
        return self._locked(self._resources.contacts, list_id)

    def callbacks_sent(self) -> list[CallbackAttempt]:
        with self._lock:
            return list(self._delivery.attempts)

    def rendered(self, campaign_id: int) -> dict[str, str]:
        """Address -> message text of every contact the campaign was sent to."""
        with self._lock:
            run = self._clock.runs.get(campaign_id)
        return run.rendered() if run is not None else {}

    def idle(self) -> bool:
        """No campaign READY or SENDING, no open window, no callback waiting or in flight."""
        with self._lock:
            return not (self._clock.busy or self._delivery.busy)

    # -- API faults and auth (called by the app before each platform call) -----------------

    def authorized(self, header: str | None) -> bool:
        scheme, _, key = (header or "").partition(" ")
        return scheme == "Bearer" and key in self.api_keys

    def injected_fault(self) -> tuple[int, float | None] | None:
        """(status, Retry-After) to answer instead of applying the call, or None."""
        with self._lock:
            dice = self._dice
            faults = dice.faults
            if faults is None or (faults.api_faults_max is not None
                                  and dice.api_faults_injected >= faults.api_faults_max):
                return None
            draw = dice.rng.random()
            if draw < faults.api_rate_limit_rate:
                dice.api_faults_injected += 1
                return 429, faults.retry_after
            if draw < faults.api_rate_limit_rate + faults.api_error_rate:
                dice.api_faults_injected += 1
                return 500, None
            return None

    def loses_answer(self, kind: str) -> bool:
        """Whether the answer to a create just applied (``campaign`` or ``list``) is to be
        lost (fault ``lost_answer_rate``)."""
        return self._locked(self._dice.loses_answer, kind)

    # -- platform API operations (raise ApiError) ------------------------------------------

    def create_campaign(self, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
        return self._locked(self._resources.create_campaign, pairs)

    def update_campaign(self, campaign_id: int, pairs: Sequence[tuple[str, str]]
                        ) -> dict[str, Any]:
        return self._locked(self._resources.update_campaign, campaign_id, pairs)

    def get_campaign(self, campaign_id: int) -> dict[str, Any]:
        with self._lock:
            return self._clock.progress(self._resources.campaign(campaign_id)).as_json()

    def delete_campaign(self, campaign_id: int) -> dict[str, Any]:
        return self._locked(self._resources.delete_campaign, campaign_id)

    def attach_payload(self, campaign_id: int, pairs: Sequence[tuple[str, str]]
                       ) -> dict[str, Any]:
        return self._locked(self._resources.attach_payload, campaign_id, pairs)

    def create_list(self, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
        return self._locked(self._resources.create_list, pairs)

    def get_list(self, list_id: int) -> dict[str, Any]:
        return self._locked(self._resources.get_list, list_id)

    def delete_list(self, list_id: int) -> dict[str, Any]:
        return self._locked(self._resources.delete_list, list_id)

    def add_contacts(self, list_id: int, payload: Any) -> dict[str, Any]:
        return self._locked(self._resources.add_contacts, list_id, payload)

    def list_templates(self, offset: int, limit: int) -> dict[str, Any]:
        return self._locked(self._resources.list_templates, offset, limit)

    def get_template(self, template_id: int) -> dict[str, Any]:
        return self._locked(self._resources.get_template, template_id)

    def list_domains(self, offset: int, limit: int) -> dict[str, Any]:
        return self._resources.list_domains(offset, limit)

    # -- the sender ------------------------------------------------------------------------

    def step(self) -> None:
        """One tick of the sending clock."""
        with self._lock:
            self._clock.step(time.time(), time.monotonic())

    async def deliver(self, client: httpx.AsyncClient) -> None:
        """Send every due callback, one at a time, in order (or shuffled, per fault)."""
        due = self._locked(self._delivery.take_due, time.monotonic())
        for callback in due:
            failed = self._locked(self._delivery.fails_by_fault)
            status = 503 if failed else await post(client, callback)
            self._locked(self._delivery.record, callback, status)

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

