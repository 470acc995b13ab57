"""``report``: a backlog of 1,000,000 unreported interactions drained into Optimove with
UpdateCampaignInteractions (10,000 customers a call, 50 calls per 10 s: 50,000 a second).

``report-lost``: the same with 2 % of the calls applied and their answers lost (25 % with
``--quick``, so its four calls see one): each such batch is in doubt until read back, and
the read-backs share the key's rate limit.

The backlog is written into the service's database before it starts; the service then forms
report batches and sends them. Duplicates are counted by the Optimove sandbox, which keeps
every reported (campaign, channel, template, event, group, date, customer).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from bench.common import Result, ServiceProbe, World, rate_share, wait_for
from bench.ingest import seed_send
from optibridge.demo import TENANT
from optibridge.domain import ChannelType
from optibridge.sandbox.optimove import FaultPlan

INTERACTIONS = "UpdateCampaignInteractions"
READ_BACK = "GetCustomerChannelInteractions"
PER_CALL = 10_000


def sizes(quick: bool) -> tuple[int, tuple[int, float]]:
    return (40_000, (50, 1.0)) if quick else (1_000_000, (50, 10.0))


def write_backlog(world: World, count: int) -> None:
    """``count`` 'opened' interactions of the one send, not yet in any batch."""
    send_id = int(world.scalar("SELECT id FROM send"))
    day = dt.datetime.now(dt.UTC).date().isoformat()
    created = time.time() - 60
    world.insert_rows("interaction",
                      ("send_id", "customer_id", "event", "day", "batch_id", "created_at"),
                      ((send_id, f"R{i:08d}", "opened", day, None, created)
                       for i in range(count)))


def lost_answers(quick: bool) -> FaultPlan:
    return FaultPlan(lost_response_rate=0.25 if quick else 0.02, seed=12,
                     functions=frozenset({INTERACTIONS}))


def run(quick: bool, lost: bool = False) -> Result:
    count, rate_limit = sizes(quick)
    result = Result("report-lost" if lost else "report", quick)
    world = World(customers=10, rate_limit=rate_limit,
                  optimove_faults=lost_answers(quick) if lost else None)
    try:
        world.start_sandboxes()
        template = world.platform.add_template("Offer", ChannelType.EMAIL, "<p>Hi</p>")
        asyncio.run(seed_send(world, 10, template))
        write_backlog(world, count)
        process = world.start_service_process()
        probe = ServiceProbe(process.pid)
        batches = -(-count // PER_CALL)

        def drained() -> bool:
            return int(world.scalar(
                "SELECT count(*) FROM report_batch WHERE state = 'sent'")) >= batches

        done = wait_for("the backlog reported", drained, timeout=900, poll=0.05,
                        alive=process)
        journal = world.optimove.journal(TENANT)
        calls = [e for e in journal if e.function == INTERACTIONS]
        first = min(e.monotonic for e in calls)  # the sandbox's clock is this process's
        span = max(e.monotonic for e in calls) - first
        drain = done - first
        share = rate_share(count / PER_CALL, drain, *rate_limit)
        counts = world.optimove.interaction_counts(TENANT)
        reported = len(counts)
        duplicates = sum(n - 1 for n in counts.values())
        ceiling = rate_limit[0] * PER_CALL / rate_limit[1]
        full = not quick
        result.add("drain rate (first call to every batch sent)", count / drain, "/s")
        result.add(f"share of the {ceiling:,.0f}/s ceiling", 100 * share, "%",
                   95.0 if full else None)
        result.add("drain time (first call to every batch sent)", drain, "s")
        result.add("interactions reported", reported, "", count if full else None)
        result.add("duplicates", duplicates, "", 0, "<=")
        result.add("429 answers", sum(1 for e in calls if e.status == 429), "", 0, "<=")
        result.add("UpdateCampaignInteractions calls", len(calls), "")
        if lost:
            result.add("answers lost (applied)", sum(1 for e in calls if e.fault), "")
            result.add("read-back calls", sum(1 for e in journal if e.function == READ_BACK),
                       "")
            result.add("batches left in doubt", int(world.scalar(
                "SELECT count(*) FROM report_batch WHERE state = 'in_doubt'")), "", 0, "<=")
        result.add("calls' span (first to last)", span, "s")
        result.add("service CPU (cores, average)", probe.cores(), "cores")
        result.add("service peak RSS", probe.peak_mb(), "MB")
    finally:
        world.close()
    return result
