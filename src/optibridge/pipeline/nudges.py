"""Wake-ups for a tenant's worker loops, one per loop: news of work (a notification, a
trigger, a gathered send) wakes only the loop that has work from it.

One wake-up shared by every loop made each of the 50 triggers a second run a pass of
every idle loop (follow's, report's, pull's...), a full core of queries that found nothing.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum


class Loop(StrEnum):
    """The worker's loops, one per step (``pipeline.worker.STEPS``)."""

    PULL = "pull"
    EXECUTE = "execute"
    MAP = "map"
    REPORT = "report"
    FOLLOW = "follow"
    TRIGGERED = "triggered"
    TEMPLATES = "templates"
    PRUNE = "prune"


class Nudges:
    """``nudge`` ends the current pause of one loop (or its next one, if it is busy)."""

    def __init__(self) -> None:
        self._events = {loop: asyncio.Event() for loop in Loop}

    def nudge(self, loop: Loop) -> None:
        self._events[loop].set()

    async def pause(self, loop: Loop, seconds: float) -> None:
        """Wait ``seconds``, or less if the loop is nudged meanwhile."""
        event = self._events[loop]
        try:
            await asyncio.wait_for(event.wait(), timeout=seconds)
        except TimeoutError:
            return
        event.clear()
