"""While a tenant's pull goes on, the uploads beside it take only the time it leaves.

The pull runs against Optimove's clock: a page not stored when its call slot comes is a
slot lost for good. Uploads run against nobody's clock but ours. So in this one event
loop a page that has come back goes first: uploads start a chunk only while no page is
waiting to be stored, i.e. while the pull waits for Optimove (its rate limit, the
network, the decoding process). A pull that leaves no such time uploads after its last
page, as execution always could.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class PullFirst:
    """How many of the tenant's pulls hold a page not yet stored."""

    def __init__(self) -> None:
        self._storing = 0
        self._free = asyncio.Event()
        self._free.set()

    @property
    def busy(self) -> bool:
        return self._storing > 0

    @contextlib.contextmanager
    def storing(self) -> Iterator[None]:
        """A pull holds a page from when it comes back until it is stored."""
        self._storing += 1
        self._free.clear()
        try:
            yield
        finally:
            self._storing -= 1
            if not self._storing:
                self._free.set()

    async def wait(self) -> None:
        """Until no page is waiting to be stored. The event may be set and cleared again
        before a waiter runs (the next page was already there), hence the loop."""
        while self._storing:
            await self._free.wait()
