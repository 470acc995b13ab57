"""``pull`` (and ``execute``): an audience of 1,000,000 recipients pulled in pages of 10,000
from the Optimove sandbox answering at once, then uploaded into platform lists.

``pull`` times the pull from the first GetCustomerSendDetailsByChannel call until the
campaign is PULLED, against Optimove's 50 calls per 10 s. ``execute`` is the same run with
Optimove's limit out of the way (``UNBOUNDED``): the uploads begin while the pull goes on,
and at Optimove's limit they keep up with it (the pull, not the upload path, is then what
a contacts-per-second figure measures); a pull with no limit leaves more than a tenth of
the contacts to upload after PULLED, which is the upload path's own rate, until every send
is READY on the platform. The sends are due in an hour, so the platform sandbox sends
nothing meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from bench.common import Result, ServiceProbe, World, console, rate_share, wait_for
from optibridge.demo import EMAIL_CAMPAIGN, EMAIL_CHANNEL, TENANT
from optibridge.domain import ChannelType
from optibridge.sandbox.optimove import AudienceRow

SEND_DETAILS = "GetCustomerSendDetailsByChannel"


UNBOUNDED = (10_000, 1.0)  # Optimove's limit for ``execute``: far above what a pull makes


def sizes(quick: bool) -> tuple[int, int, tuple[int, float]]:
    """(recipients, page size, rate limit)."""
    if quick:
        return 20_000, 2_000, (50, 1.0)
    return 1_000_000, 10_000, (50, 10.0)


def audience(count: int, template: int) -> list[AudienceRow]:
    when = (dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
            + dt.timedelta(hours=1))
    names = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken")
    return [AudienceRow(f"C{i:08d}", template, when,
                        {"Email": f"customer{i}@example.com", "FirstName": names[i % 6]})
            for i in range(count)]


def watch_uploads(world: World) -> list[tuple[float, int]]:
    """When each import reached the platform sandbox and how many contacts it held (wall
    clock, filled in as it happens): uploads begin while the pull still goes on, so
    execution is timed from the first, and what came after PULLED is the upload path
    with the service's loop to itself."""
    seen: list[tuple[float, int]] = []
    add_contacts = world.platform.add_contacts

    def timed(list_id: int, payload: Any) -> dict[str, Any]:
        arrived = time.time()
        answer = add_contacts(list_id, payload)  # refuses a body without its contacts
        seen.append((arrived, len(payload["contacts"])))
        return answer

    world.platform.add_contacts = timed  # type: ignore[method-assign]
    return seen


def run(quick: bool, limited: bool = True) -> dict[str, Result]:
    """The pull's figures and execution's; ``limited=False``: Optimove's limit is
    ``UNBOUNDED`` (the ``execute`` benchmark, whose pull figures say nothing of the limit)."""
    count, page, rate_limit = sizes(quick)
    if not limited:
        rate_limit = UNBOUNDED
    pull, execute = Result("pull", quick), Result("execute", quick)
    world = World(customers=count, page_size=page, rate_limit=rate_limit)
    try:
        world.start_sandboxes()
        asyncio.run(world._register())  # listeners first, as a user would
        template = world.platform.add_template("Offer", ChannelType.EMAIL,
                                               "<p>Hello {{FirstName}}</p>")
        loaded = time.monotonic()
        world.optimove.load_audience(TENANT, EMAIL_CAMPAIGN, EMAIL_CHANNEL,
                                     audience(count, template))
        console.print(f"audience of {count:,} loaded into the sandbox in "
                      f"{time.monotonic() - loaded:.1f} s")
        uploads = watch_uploads(world)
        process = world.start_service_process()
        probe = ServiceProbe(process.pid)
        world.optimove.notify(TENANT, 13, campaign_id=EMAIL_CAMPAIGN, channel_id=EMAIL_CHANNEL)
        wait_for("campaign PULLED", lambda: world.scalar(
            "SELECT state FROM campaign") == "pulled",
            timeout=600, alive=process)
        pull_rss, pull_cores = probe.peak_mb(), probe.cores()
        calls = [e for e in world.optimove.journal(TENANT) if e.function == SEND_DETAILS]
        clock = time.time() - time.monotonic()  # the journal's monotonic -> wall time
        first = min(e.monotonic for e in calls) + clock
        pulled_at = float(world.scalar("SELECT pulled_at FROM campaign"))
        span = max(e.monotonic for e in calls) - min(e.monotonic for e in calls)
        share = rate_share(len(calls), pulled_at - first, *rate_limit)
        refused = sum(1 for e in calls if e.status == 429)
        full = not quick
        pull.add("recipients pulled", world.scalar("SELECT pulled FROM campaign"), "")
        pull.add("pull time (first call to PULLED)", pulled_at - first, "s",
                 21.0 if full else None, "<=")
        pull.add("Optimove calls", len(calls), "")
        pull.add("calls' span (first to last)", span, "s")
        pull.add("share of the rate limit achieved", 100 * share, "%", 95.0)
        pull.add("429 answers", refused, "", 0, "<=")
        pull.add("pages per second", len(calls) / max(1e-9, pulled_at - first), "/s")
        pull.add("service CPU (cores, average)", pull_cores, "cores")
        pull.add("service peak RSS", pull_rss, "MB", 200.0, "<=")

        sends = int(world.scalar("SELECT count(*) FROM send"))
        wait_for("every send READY", lambda: world.scalar(
            "SELECT count(*) FROM send WHERE state = 'ready'") == sends,
            timeout=900, alive=process)
        ready_at = float(world.scalar("SELECT max(ready_at) FROM send"))
        contacts = int(world.scalar("SELECT sum(recipients) FROM send"))
        seconds = ready_at - uploads[0][0]
        after = sum(count for at, count in uploads if at > pulled_at)
        alone = ready_at - pulled_at
        # While the pull goes on, uploads take only the time it leaves (pipeline/
        # pull_first.py), so the first figure is bounded by the pull (1,000,000 at its
        # 20 s floor is 50,000/s). The upload path's own rate is the one after PULLED,
        # given only when a tenth of the contacts or more went up then.
        measured = after >= contacts / 10
        execute.add("contacts per second, uploads alone (after PULLED)",
                    after / alone if measured else float("nan"), "/s",
                    50_000.0 if full else None)
        if not measured:
            execute.notes.append("uploads alone: not measured, fewer than a tenth of the "
                                 "contacts went up after PULLED (they kept up with the pull)")
        execute.add("contacts per second (first upload to last READY)", contacts / seconds,
                    "/s")
        execute.add("contacts uploaded", contacts, "")
        execute.add("contacts uploaded after PULLED", after, "")
        pull.add("contacts uploaded after PULLED (kept up with the pull if few)", after, "")
        execute.add("execution time (first upload to last READY)", seconds, "s")
        execute.add("execution time after the pull (PULLED to READY)", alone, "s")
        execute.add("service CPU (cores, average, pull + execute)", probe.cores(), "cores")
        execute.add("service peak RSS", probe.peak_mb(), "MB")
    finally:
        world.close()
    return {"pull": pull, "execute": execute}
