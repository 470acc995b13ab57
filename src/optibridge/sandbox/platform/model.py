"""Public settings and record types of the platform sandbox."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from optibridge.sandbox.platform.contract import Channel, Event, State


@dataclass
class EventRates:
    """The seeded random model of what happens to each message.

    ``delivered`` and ``bounced`` are exclusive shares of all messages (a remainder gets
    neither); ``opened`` is a share of delivered emails, ``clicked`` a share of opened ones.
    """

    delivered: float = 0.97
    bounced: float = 0.03
    opened: float = 0.35
    clicked: float = 0.4

    def __post_init__(self) -> None:
        for name in ("delivered", "bounced", "opened", "clicked"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"EventRates.{name} must be within 0..1")
        if self.delivered + self.bounced > 1.0 + 1e-9:
            raise ValueError("EventRates: delivered + bounced must not exceed 1")


@dataclass
class Settings:
    """The sandbox's tunable behaviour, shared by its parts (``PlatformSandbox`` exposes each
    as an attribute of the same name)."""

    seed: int = 0
    callback_window: float = 300.0  # seconds one callback gathers events ("up to five minutes")
    tick: float = 0.05  # seconds between two steps of the sender and of the delivery
    rates: EventRates = field(default_factory=EventRates)
    max_addresses_per_callback: int = 100_000
    callback_retry: float = 0.2  # first retry delay of an unanswered callback; doubles up to 30 s
    callback_attempts: int = 20
    # Assumption (no source says how the platform numbers objects): IDs count up, one
    # sequence for templates, lists and campaigns. True draws each new ID at random instead,
    # a platform whose IDs say nothing of the order in which objects were made.
    scattered_ids: bool = False


@dataclass
class PlatformFaults:
    """Misbehaviour to inject. API faults hit authenticated platform calls before they are
    applied; callback faults hit the sender; campaign faults are read when a campaign starts.
    """

    duplicate_callback_rate: float = 0.0  # share of delivered callbacks sent once more
    reorder_callbacks: bool = False  # send due callbacks in a shuffled order
    api_error_rate: float = 0.0  # share of API calls answered 500 (not applied)
    api_rate_limit_rate: float = 0.0  # share of API calls answered 429 (not applied)
    retry_after: float = 1.0  # the Retry-After (seconds) sent with an injected 429
    api_faults_max: int | None = None  # stop injecting API faults after this many
    callback_error_rate: float = 0.0  # share of callback POSTs not sent, counted as a 503
    callback_delay: float = 0.0  # extra seconds before a callback is first sent
    # A platform running late: each callback's extra delay is drawn between callback_delay
    # and this (seconds); None: always callback_delay. The lag a receiver observes (arrival
    # minus the callback's `when`) is the callback window plus this delay.
    callback_lag_max: float | None = None
    fail_campaigns_after: float | None = None  # ERROR after this share was submitted
    withhold_submitted_rate: float = 0.0  # contacts that get no event; campaign still DONE
    # Create POSTs (/campaign, /list) applied, then their answer lost: the connection drops
    # mid-answer. ``lost_answers_of`` says which creates ("campaign", "list"); at most
    # ``lost_answers_max`` answers are lost (None: no limit).
    lost_answer_rate: float = 0.0
    lost_answers_of: tuple[str, ...] = ("campaign", "list")
    lost_answers_max: int | None = None
    seed: int = 0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlatformFaults:
        """From the admin API's JSON object; unknown keys are an error (typos)."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        values = dict(data)
        if "lost_answers_of" in values:
            kinds = values["lost_answers_of"]
            if not isinstance(kinds, list | tuple) or not set(kinds) <= {"campaign", "list"}:
                raise ValueError('lost_answers_of: a list of "campaign" and "list"')
            values["lost_answers_of"] = tuple(kinds)
        return cls(**values)


@dataclass(frozen=True)
class SandboxPayload:
    type: Channel
    template: int


@dataclass(frozen=True)
class SandboxCampaign:
    """A snapshot of one campaign, with the sender's progress."""

    id: int
    name: str
    state: State
    list_id: int
    domain: int
    when: int  # Unix seconds
    event_callback: str | None
    segments: tuple[int, ...]
    payloads: tuple[SandboxPayload, ...]
    created: int
    contacts_total: int = 0  # contacts of the list when it started sending
    contacts_done: int = 0  # contacts the sender has handled so far

    def as_json(self) -> dict[str, Any]:
        """The platform's JSON for a campaign (section 2: Unix times, integer IDs)."""
        return {"id": self.id, "name": self.name, "state": self.state.value,
                "list": self.list_id, "domain": self.domain, "when": self.when,
                "event_callback": self.event_callback, "segments": list(self.segments),
                "payloads": [{"type": p.type.value, "template": p.template}
                             for p in self.payloads],
                "created": self.created}


@dataclass(frozen=True)
class SandboxContact:
    email: str | None
    telephone: str | None
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CallbackAttempt:
    """One POST of a callback (or a failed try at it)."""

    campaign_id: int
    url: str
    event: Event
    addresses: int  # how many addresses the callback carried
    status: int | None  # HTTP status, None if no answer
    attempt: int  # 1 for the first try of this callback
    duplicate: bool  # a deliberate re-send (fault), not a retry
    when: int  # the callback's `when`


class FaultDice:
    """The fault plan in force and the one seeded generator every injected fault draws from.

    Not thread-safe by itself: callers hold the sandbox's lock.
    """

    def __init__(self, faults: PlatformFaults | None, seed: int) -> None:
        self.set(faults, seed)

    def set(self, faults: PlatformFaults | None, seed: int) -> None:
        """A new plan; the generator restarts from its seed (the sandbox's if no plan)."""
        self.faults = faults
        self.rng = random.Random(faults.seed if faults else seed)
        self.api_faults_injected = 0
        self.answers_lost = 0

    def loses_answer(self, kind: str) -> bool:
        """Whether the answer to this create (``campaign`` or ``list``), already applied,
        is to be lost."""
        faults = self.faults
        # No draw unless the fault is on: the other faults' seeded sequences stay as they were.
        if faults is None or faults.lost_answer_rate <= 0 or kind not in faults.lost_answers_of or (
                faults.lost_answers_max is not None
                and self.answers_lost >= faults.lost_answers_max):
            return False
        if self.rng.random() >= faults.lost_answer_rate:
            return False
        self.answers_lost += 1
        return True

    def callback_delay(self) -> float:
        """Seconds a callback waits before it is first sent (the lag faults)."""
        faults = self.faults
        if faults is None:
            return 0.0
        if faults.callback_lag_max is None or faults.callback_lag_max <= faults.callback_delay:
            return faults.callback_delay
        return self.rng.uniform(faults.callback_delay, faults.callback_lag_max)
