"""Seeded fault injection: the failures a connector must survive, on demand."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Fault(StrEnum):
    ERROR = "error"  # 500 before applying
    RATE_LIMIT = "rate_limit"  # 429 before applying
    LOST_RESPONSE = "lost_response"  # applied, then the connection drops mid-answer
    SLOW = "slow"  # applied, answered after slow_seconds


@dataclass(frozen=True)
class FaultPlan:
    """Rates are probabilities per request, drawn from one seeded random stream."""

    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    lost_response_rate: float = 0.0
    slow_seconds: float = 0.0
    functions: frozenset[str] | None = None  # Function names (any case); None = every one
    seed: int = 0

    def __post_init__(self) -> None:
        rates = (self.error_rate, self.rate_limit_rate, self.lost_response_rate)
        if any(rate < 0 or rate > 1 for rate in rates) or sum(rates) > 1:
            raise ValueError("fault rates must be within 0..1 and add up to at most 1")
        if self.slow_seconds < 0:
            raise ValueError("slow_seconds must be >= 0")
        if self.functions is not None:
            object.__setattr__(self, "functions",
                               frozenset(name.lower() for name in self.functions))

    def covers(self, function: str) -> bool:
        return self.functions is None or function.lower() in self.functions

    @classmethod
    def from_json(cls, data: Any) -> FaultPlan | None:
        """Parse the admin API's JSON form (``null`` clears every fault)."""
        if data is None:
            return None
        if not isinstance(data, dict):
            raise ValueError("a fault plan is a JSON object or null")
        known = {"error_rate", "rate_limit_rate", "lost_response_rate", "slow_seconds",
                 "functions", "seed"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault plan keys: {sorted(unknown)}")
        functions = data.get("functions")
        if functions is not None and (not isinstance(functions, list)
                                      or not all(isinstance(f, str) for f in functions)):
            raise ValueError("functions must be a list of Function names or null")
        numbers = {key: data[key] for key in known - {"functions", "seed"} if key in data}
        for key, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key} must be a number")
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError("seed must be an integer")
        return cls(**numbers, seed=seed,
                   functions=None if functions is None else frozenset(functions))

    def to_json(self) -> dict[str, Any]:
        return {"error_rate": self.error_rate, "rate_limit_rate": self.rate_limit_rate,
                "lost_response_rate": self.lost_response_rate,
                "slow_seconds": self.slow_seconds, "seed": self.seed,
                "functions": None if self.functions is None else sorted(self.functions)}


class FaultRoller:
    """Draws the fault of each request; not thread-safe (the sandbox holds its lock).

    The sandbox's own seed is mixed into the plan's, so that two sandboxes given the same
    plan can fail differently; a sandbox seed of 0 leaves the plan's seed as it is.
    """

    def __init__(self, plan: FaultPlan | None, sandbox_seed: int = 0) -> None:
        self.plan = plan
        self._random = random.Random((sandbox_seed << 32) ^ (plan.seed if plan else 0))

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
        return Fault.SLOW if plan.slow_seconds > 0 else None
