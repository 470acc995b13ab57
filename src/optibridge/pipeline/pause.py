"""A tenant's reporting, held back after an error that a later call can recover from
(a revoked key, a proxy's 404/408/413, 429, 5xx, timeouts): nothing is given up, the next
try waits longer each time, and the first call that works resumes reporting."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Pause:
    """Back-off state of one tenant's reporting (in this process, which holds its lease)."""

    first: float = 1.0  # seconds before the first retry
    longest: float = 60.0  # the back-off stops growing here
    failures: int = 0  # in a row, since the last call that worked
    # Failures in a row that start a pause. A lone failure among calls that work is that
    # call's (its answer lost, say), not Optimove's: pausing for it would stop the pass.
    strikes: int = 2
    until: float = 0.0  # monotonic: no report call before then
    since: float | None = None  # wall clock: when the trouble started
    reason: str | None = None

    @property
    def active(self) -> bool:
        return self.paused and time.monotonic() < self.until

    @property
    def remaining(self) -> float:
        """Seconds until the next try may go (0 when not paused)."""
        return max(0.0, self.until - time.monotonic()) if self.paused else 0.0

    @property
    def paused(self) -> bool:
        """Reporting is in trouble (paused, or trying again after a pause)."""
        return self.failures >= self.strikes

    def failed(self, reason: str) -> bool:
        """Note one more failure; True when this starts a pause (worth telling someone).

        Calls that were under way together fail together: one that fails while the pause
        it joins is still on counts as the same try, not as another doubling."""
        if self.active:
            self.reason = reason
            return False
        if self.failures == 0:
            self.since = time.time()
        self.failures += 1
        self.reason = reason
        if not self.paused:
            return False  # a lone failure so far: the next call tells whether it lasts
        self.until = time.monotonic() + self.delay()
        return self.failures == self.strikes

    def delay(self) -> float:
        return min(self.longest, self.first * 2.0 ** max(self.failures - self.strikes, 0))

    def succeeded(self) -> float | None:
        """A call worked: resume. Seconds the pause lasted, if there was one."""
        paused = self.paused
        lasted = time.time() - (self.since or time.time())
        self.failures, self.until, self.since, self.reason = 0, 0.0, None, None
        return lasted if paused else None
