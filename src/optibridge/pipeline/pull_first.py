"""While a campaign is pulled, the uploads of its sends take only the time the pull leaves.

The pull of GetCustomerSendDetailsByChannel pages runs against Optimove's clock: a page
not stored when its call slot comes is a slot lost for good. Uploads run against nobody's
clock but ours. So in this one event loop a page that has come back goes first: a send of
the campaign being pulled sends an upload chunk only while none of that campaign's pages
waits to be stored, i.e. while the pull waits for Optimove (its rate limit, the network,
the decoding process). A pull that leaves no such time has its sends uploaded after its
last page, as execution always could. Another campaign's pull does not hold them up: once
their own pull is done, their uploads are what stands between them and READY. (Event-14
file audiences are not on Optimove's clock and are not held to this.)

Mapping callbacks yields to a campaign's steps to READY on either database: while one of
the tenant's pulls or uploads is under way, a mapping pass goes only every so often
(``TimingConfig.map_during_campaigns``). Mapping is work the pages and chunks need the
cores for (on PostgreSQL the server's inserts; on SQLite the write connection too, where a
pass over large callbacks held an upload point's write for seconds), and a callback mapped
later loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator


class PullFirst:
    """Which campaigns (by store key) have a pulled page not yet stored.

    ``hold``: whether uploads are held back at all. Yes where the store's writes take
    turns on one connection (SQLite): there a page's store is the loop's and the writer's
    work, which the uploads beside it share. Not where writes go side by side
    (PostgreSQL): a page's store is then mostly the server's time, the loop is free for
    the uploads, and holding them back only moved them after the pull (BENCHMARKS.md,
    2026-12-06: the pull at the limit, but the last READY 6 s later).
    """

    def __init__(self, hold: bool = True) -> None:
        self.hold = hold
        self._storing: Counter[int] = Counter()
        self._stored: dict[int, asyncio.Event] = {}  # set when the last one is stored
        self._under_way = 0
        self._none_under_way = asyncio.Event()
        self._none_under_way.set()

    @contextlib.contextmanager
    def under_way(self) -> Iterator[None]:
        """One of the tenant's pulls (first page to last) or a send's upload is under way."""
        self._under_way += 1
        self._none_under_way.clear()
        try:
            yield
        finally:
            self._under_way -= 1
            if not self._under_way:
                self._none_under_way.set()

    @property
    def any_under_way(self) -> bool:
        return self._under_way > 0

    async def until_none_under_way(self, longest: float) -> None:
        """Until no pull or upload of the tenant is under way, or ``longest`` seconds."""
        if self._under_way:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._none_under_way.wait(), longest)

    def busy(self, campaign_pk: int) -> bool:
        """A page of this campaign has come back and is not stored yet (and uploads are
        held back for it)."""
        return self.hold and self._storing[campaign_pk] > 0

    @contextlib.contextmanager
    def storing(self, campaign_pk: int) -> Iterator[None]:
        """A campaign's pull holds a page from when it comes back until it is stored."""
        self._storing[campaign_pk] += 1
        self._stored.setdefault(campaign_pk, asyncio.Event())
        try:
            yield
        finally:
            self._storing[campaign_pk] -= 1
            if not self._storing[campaign_pk]:
                del self._storing[campaign_pk]
                self._stored.pop(campaign_pk).set()

    async def wait(self, campaign_pk: int) -> None:
        """Until none of the campaign's pages waits to be stored. The next page may be
        taken up before a waiter runs (it was already there), hence the loop."""
        while self.busy(campaign_pk):
            await self._stored[campaign_pk].wait()
