"""Seeded fault injection: the failures a connector must survive, on demand."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any


class Fault(StrEnum):
    ERROR = "error"  # 500 before applying
    RATE_LIMIT = "rate_limit"  # 429 before applying
    LOST_RESPONSE = "lost_response"  # applied, then the connection drops mid-answer
    SLOW = "slow"  # applied, answered after slow_seconds
    AUTH = "auth"  # refused with auth_failure_status (a revoked key), not applied
    ERROR_BODY = "error_body"  # 200 with {"status": "error", ...}, not applied


class ReadbackRows(StrEnum):
    """What one row of GetCustomerChannelInteractions stands for (no source says)."""

    PER_CALL = "per_call"  # one row per applied UpdateCampaignInteractions call (as before)
    DISTINCT = "distinct"  # one row per distinct (campaign, channel, template, event, ...)


class ReadbackDate(StrEnum):
    """Which date StartDate..EndDate filters on (seed 001 says 'campaigns sent during')."""

    INTERACTION = "interaction"  # the reported InteractionDate (as before)
    SEND = "send"  # the customer's send date; the row's Date is then the send date too


class ReadbackShape(StrEnum):
    """The rows GetCustomerChannelInteractions answers (seed 001: a tenant's feature flag
    switches it to GetCampaignEngagementMetrics' format, which is not public)."""

    KNOWN = "known"  # seed 001's rows
    ENGAGEMENT_METRICS = "engagement_metrics"  # a guess at the new format: other names


@dataclass(frozen=True)
class FaultPlan:
    """Rates are probabilities per request, drawn from one seeded random stream.

    The ``readback_*`` settings are not faults but the undocumented semantics of
    GetCustomerChannelInteractions, so a test can run the product under each reading.
    ``auth_failure_status`` (401 or 403) refuses every covered call for
    ``auth_failure_seconds`` after the plan is set (None: until it is replaced).
    """

    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    lost_response_rate: float = 0.0
    error_body_rate: float = 0.0
    slow_seconds: float = 0.0
    functions: frozenset[str] | None = None  # Function names (any case); None = every one
    seed: int = 0
    readback_delay_seconds: float = 0.0  # an applied call shows in read-backs this late
    readback_rows: ReadbackRows = ReadbackRows.PER_CALL
    readback_date: ReadbackDate = ReadbackDate.INTERACTION
    readback_shape: ReadbackShape = ReadbackShape.KNOWN
    auth_failure_status: int | None = None
    auth_failure_seconds: float | None = None
    auth_failure_functions: frozenset[str] | None = None  # None = every Function

    def __post_init__(self) -> None:
        rates = (self.error_rate, self.rate_limit_rate, self.lost_response_rate,
                 self.error_body_rate)
        if any(rate < 0 or rate > 1 for rate in rates) or sum(rates) > 1:
            raise ValueError("fault rates must be within 0..1 and add up to at most 1")
        if self.slow_seconds < 0:
            raise ValueError("slow_seconds must be >= 0")
        if self.readback_delay_seconds < 0:
            raise ValueError("readback_delay_seconds must be >= 0")
        if self.auth_failure_status not in (None, 401, 403):
            raise ValueError("auth_failure_status must be 401, 403 or null")
        if self.auth_failure_seconds is not None and self.auth_failure_seconds < 0:
            raise ValueError("auth_failure_seconds must be >= 0 or null")
        object.__setattr__(self, "readback_rows", ReadbackRows(self.readback_rows))
        object.__setattr__(self, "readback_date", ReadbackDate(self.readback_date))
        object.__setattr__(self, "readback_shape", ReadbackShape(self.readback_shape))
        for name in ("functions", "auth_failure_functions"):
            names = getattr(self, name)
            if names is not None:
                object.__setattr__(self, name, frozenset(n.lower() for n in names))

    def covers(self, function: str) -> bool:
        return self.functions is None or function.lower() in self.functions

    def refuses(self, function: str, since_set: float) -> bool:
        """Whether the revoked-key fault refuses this call ``since_set`` s after the plan."""
        if self.auth_failure_status is None:
            return False
        if self.auth_failure_seconds is not None and since_set >= self.auth_failure_seconds:
            return False
        names = self.auth_failure_functions
        return names is None or function.lower() in names

    @classmethod
    def from_json(cls, data: Any) -> FaultPlan | None:
        """Parse the admin API's JSON form (``null`` clears every fault)."""
        if data is None:
            return None
        if not isinstance(data, dict):
            raise ValueError("a fault plan is a JSON object or null")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault plan keys: {sorted(unknown)}")
        values: dict[str, Any] = {}
        for key in ("functions", "auth_failure_functions"):
            names = data.get(key)
            if names is not None and (not isinstance(names, list)
                                      or not all(isinstance(f, str) for f in names)):
                raise ValueError(f"{key} must be a list of Function names or null")
            values[key] = None if names is None else frozenset(names)
        for key in ("error_rate", "rate_limit_rate", "lost_response_rate", "error_body_rate",
                    "slow_seconds",
                    "readback_delay_seconds", "auth_failure_seconds"):
            value = data.get(key)
            if value is None and key == "auth_failure_seconds":
                continue
            if key in data and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ValueError(f"{key} must be a number")
            if key in data:
                values[key] = float(value)  # type: ignore[arg-type]
        for key in ("seed", "auth_failure_status"):
            value = data.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{key} must be an integer")
            if value is not None:
                values[key] = value
        for key, kind in (("readback_rows", ReadbackRows), ("readback_date", ReadbackDate),
                          ("readback_shape", ReadbackShape)):
            if key in data:
                try:
                    values[key] = kind(data[key])
                except ValueError:
                    raise ValueError(f"{key} must be one of {[str(k) for k in kind]}") from None
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return {"error_rate": self.error_rate, "rate_limit_rate": self.rate_limit_rate,
                "lost_response_rate": self.lost_response_rate,
                "error_body_rate": self.error_body_rate,
                "slow_seconds": self.slow_seconds, "seed": self.seed,
                "functions": None if self.functions is None else sorted(self.functions),
                "readback_delay_seconds": self.readback_delay_seconds,
                "readback_rows": str(self.readback_rows),
                "readback_date": str(self.readback_date),
                "readback_shape": str(self.readback_shape),
                "auth_failure_status": self.auth_failure_status,
                "auth_failure_seconds": self.auth_failure_seconds,
                "auth_failure_functions": None if self.auth_failure_functions is None
                else sorted(self.auth_failure_functions)}


class FaultRoller:
    """Draws the fault of each request; not thread-safe (the sandbox holds its lock).

    The sandbox's own seed is mixed into the plan's, so that two sandboxes given the same
    plan can fail differently; a sandbox seed of 0 leaves the plan's seed as it is.
    """

    def __init__(self, plan: FaultPlan | None, sandbox_seed: int = 0) -> None:
        self.plan = plan
        self.set_at = time.monotonic()
        self._random = random.Random((sandbox_seed << 32) ^ (plan.seed if plan else 0))

    def refusal(self, function: str, now: float) -> int | None:
        """The status of the revoked-key fault for this call, if it is refused."""
        plan = self.plan
        if plan is None or not plan.refuses(function, now - self.set_at):
            return None
        return plan.auth_failure_status

    def draw(self, function: str) -> Fault | None:
        plan = self.plan
        if plan is None or not plan.covers(function):
            return None
        roll = self._random.random()
        if roll < plan.error_rate:
            return Fault.ERROR
        roll -= plan.error_rate
        if roll < plan.rate_limit_rate:
            return Fault.RATE_LIMIT
        roll -= plan.rate_limit_rate
        if roll < plan.lost_response_rate:
            return Fault.LOST_RESPONSE
        roll -= plan.lost_response_rate
        if roll < plan.error_body_rate:
            return Fault.ERROR_BODY
        return Fault.SLOW if plan.slow_seconds > 0 else None
