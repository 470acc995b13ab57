"""``status``: how fast ``/metrics`` and ``/ui`` answer over a store at scale: 10,000,000
interactions (most of them in sent report batches, the newest ``UNSENT`` batches dead
letters, so the report backlog counts what they hold) and 1,000,000 inbox rows (1,000 of
them not mapped yet) written straight into the service's database before it starts
(--quick: 100,000 and 10,000). Each page is asked for ``REQUESTS`` times after one warm-up request;
the figures are the median and the slowest answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import time
from collections.abc import Iterator

import httpx

from bench.common import Result, ServiceProbe, World
from bench.ingest import seed_send
from optibridge.domain import ChannelType

REQUESTS = 20
PAGES = {"/metrics": "optibridge_report_batches", "/ui": "optibridge"}
REPORTED = ("opened", "clicked")  # in sent batches
NEVER_BATCHED = ("submitted", "delivered")
PER_BATCH = 10_000
UNSENT = 2  # a batch not sent is what made the backlog count read a whole index (d7efb0d)


def sizes(quick: bool) -> tuple[int, int]:
    """(interactions, inbox rows)."""
    return (100_000, 10_000) if quick else (10_000_000, 1_000_000)


def _interactions(send_id: int, count: int, day: str, created: float
                  ) -> Iterator[tuple[object, ...]]:
    """Four events per customer: two never batched, two in sent batches of 10,000."""
    events = NEVER_BATCHED + REPORTED
    for i in range(count):
        event = events[i % len(events)]
        batch = 1 + (i // len(events)) // PER_BATCH if event in REPORTED else None
        yield send_id, f"C{i // len(events):08d}", event, day, batch, created


def write_store(world: World, interactions: int, inbox: int) -> None:
    send_id = int(world.scalar("SELECT id FROM send"))
    day = dt.datetime.now(dt.UTC).date().isoformat()
    created = time.time() - 3_600
    customers = -(-interactions // 4)
    batches = -(-customers // PER_BATCH)
    world.insert_rows(
        "report_batch",
        ("id", "tenant", "campaign_id", "channel_id", "template_id", "event_id",
         "recipient_group_id", "interaction_date", "size", "state", "attempts", "created_at",
         "updated_at", "backend"),
        ((b, "demo", 1, 1, 1, 2, 1, day, PER_BATCH,
          "sent" if b <= 2 * batches - UNSENT else "dead_letter", 1, created, created,
          "interactions") for b in range(1, 2 * batches + 1)))
    world.insert_rows("interaction",
                      ("send_id", "customer_id", "event", "day", "batch_id", "created_at"),
                      _interactions(send_id, interactions, day, created))
    world.insert_rows(
        "callback_inbox",
        ("send_id", "event", "event_time", "addresses", "count", "received_at",
         "processed_at", "attempts"),
        ((send_id, "opened", int(created), f'["customer{i % 10}@example.com"]', 1, created,
          None if i < 1_000 else created + 1, 0) for i in range(inbox)))


def _timed(client: httpx.Client, path: str, marker: str) -> float:
    started = time.perf_counter()
    answer = client.get(path)
    took = time.perf_counter() - started
    if answer.status_code != 200 or marker not in answer.text:
        raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:200]}")
    return took * 1000


def run(quick: bool) -> Result:
    interactions, inbox = sizes(quick)
    result = Result("status", quick)
    world = World(customers=10, rate_limit=(50, 1.0) if quick else (50, 10.0))
    try:
        world.start_sandboxes()
        template = world.platform.add_template("Offer", ChannelType.EMAIL, "<p>Hi</p>")
        asyncio.run(seed_send(world, 10, template))
        started = time.monotonic()
        write_store(world, interactions, inbox)
        written = time.monotonic() - started
        process = world.start_service_process()
        probe = ServiceProbe(process.pid)
        full = not quick
        with httpx.Client(base_url=world.service_url, timeout=60) as client:
            for path, marker in PAGES.items():
                _timed(client, path, marker)  # warm-up: connections, templates, caches
                times = [_timed(client, path, marker) for _ in range(REQUESTS)]
                result.add(f"{path} median answer", statistics.median(times), "ms",
                           200.0 if full else None, "<=")
                result.add(f"{path} slowest answer", max(times), "ms")
        result.add("interactions in the store", interactions, "")
        result.add("inbox rows in the store", inbox, "")
        result.add("report batches not sent (dead letters)", UNSENT, "")
        result.add("seconds to write them", written, "s")
        result.add("service peak RSS", probe.peak_mb(), "MB")
    finally:
        world.close()
    return result
