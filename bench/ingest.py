"""``ingest-batched`` and ``ingest-single``: signed platform callbacks POSTed at the service
as fast as it answers them, by a load generator in its own process.

The callbacks name real recipients of a real send (executed on the platform sandbox, due
in an hour), so the service's background mapping does its real work while it ingests.
"Stored" is what the service answered 2xx to: the answer waits for the callback to be
committed to the inbox. ``ingest-single`` also measures, in the same run, a bare endpoint
of the same web stack (Starlette on uvicorn) that only answers 200.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import time
from urllib.parse import urlsplit

from bench import loadgen
from bench.common import (
    TARGET,
    Result,
    ServiceProbe,
    World,
    console,
    percentile,
    wait_for,
)
from optibridge.config import TimingConfig
from optibridge.demo import EMAIL_CAMPAIGN, EMAIL_CHANNEL, TENANT
from optibridge.domain import AudienceEntry, ChannelType, fields_json
from optibridge.platform.api import CallbackBatch, MessageEvent
from optibridge.platform.callbacks import encode_callback
from optibridge.serving import free_port, wait_for_port
from optibridge.signing import UrlSigner
from optibridge.store import open_store


async def seed_send(world: World, recipients: int, template: int) -> list[str]:
    """A pulled campaign with one send of ``recipients`` customers; their addresses."""
    store = await open_store(world.config.server.database_url)
    when = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0) + dt.timedelta(hours=1)
    addresses = [f"customer{i}@example.com" for i in range(recipients)]
    fields = fields_json({"FirstName": "Ada"})
    try:
        campaign, _ = await store.open_campaign(TENANT, EMAIL_CAMPAIGN, EMAIL_CHANNEL)
        page = 10_000
        for skip in range(0, recipients, page):
            entries = [AudienceEntry(f"C{i:08d}", template, when, addresses[i],
                                     fields)
                       for i in range(skip, min(recipients, skip + page))]
            await store.store_audience_page(campaign.id, "email", skip, entries,
                                            skip + page >= recipients)
    finally:
        await store.db.dispose()
    return addresses


def callbacks(world: World, addresses: list[str], per_callback: int, count: int
              ) -> list[tuple[bytes, int]]:
    """``count`` encoded callback requests of ``per_callback`` addresses each."""
    send_id = int(world.scalar("SELECT id FROM send"))
    signer = UrlSigner(world.config.server.secret(), world.service_url)
    url = urlsplit(signer.callback_url(TENANT, send_id))
    path = f"{url.path}?{url.query}"
    now = int(time.time())
    requests = []
    for n in range(count):
        start = (n * per_callback) % len(addresses)
        part = tuple(addresses[(start + k) % len(addresses)] for k in range(per_callback))
        event = MessageEvent.DELIVERED if n % 2 == 0 else MessageEvent.OPENED
        body = encode_callback(CallbackBatch(event, now, ChannelType.EMAIL, part))
        requests.append((loadgen.post(path, body, "127.0.0.1", world.service_port),
                         per_callback))
    return requests


def start_bare(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "bench.bare", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, process)
    return process


def run(name: str, quick: bool) -> Result:
    single = name == "ingest-single"
    per_callback = 1 if single else 100
    duration = 3.0 if quick else 60.0
    concurrency = 32  # connections the platform keeps open to us, in both benchmarks
    result = Result(name, quick)
    # The service polls as deployed ([timing] idle, 1 s by default), not as the demo's
    # 0.1 s: ten idle passes a second of each of the tenant's background loops, a cost a
    # deployment does not pay, held the event loop in about a third of py-spy's samples
    # under this load (2026-12-06: 1,973 callbacks a second at 0.1 s, 2,939 at 1 s).
    world = World(customers=10, page_size=10_000, timing={"idle": TimingConfig().idle})
    bare = None
    try:
        world.start_sandboxes()
        template = world.platform.add_template("Offer", ChannelType.EMAIL, "<p>Hi</p>")
        recipients = 20_000 if quick else 200_000
        addresses = asyncio.run(seed_send(world, recipients, template))
        processes = world.start_replicas(TARGET.replicas)
        process = processes[0]
        wait_for("the send READY", lambda: world.scalar(
            "SELECT state FROM send") == "ready", timeout=300, alive=process)
        requests = callbacks(world, addresses, per_callback, 2_000)
        probe = ServiceProbe(*(p.pid for p in processes))
        load = loadgen.closed_loop("127.0.0.1", world.ports, requests,
                                   concurrency=concurrency, duration=duration)
        cores = probe.cores()
        stopped = time.monotonic()
        backlog_sql = ("SELECT coalesce(sum(count), 0) FROM callback_inbox "
                       "WHERE processed_at IS NULL")
        backlog = int(world.scalar(backlog_sql))
        mapped = wait_for("the inbox mapped", lambda: world.scalar(backlog_sql) == 0,
                          timeout=600, poll=0.2, alive=process)
        stored_inbox = int(world.scalar("SELECT coalesce(sum(count), 0) FROM callback_inbox"))
        p50, p99 = (1000 * percentile(load.latencies, s) for s in (0.5, 0.99))
        full = not quick
        if single:
            result.add("callbacks stored per second", load.ok / load.seconds, "/s",
                       3_000.0 if full else None)
            result.add("p99 answer", p99, "ms", 50.0 if full else None, "<=")
        else:
            result.add("address-events stored per second", load.units / load.seconds, "/s",
                       100_000.0 if full else None)
            result.add("callbacks stored per second", load.ok / load.seconds, "/s")
            result.add("p99 answer", p99, "ms", 100.0 if full else None, "<=")
        result.add("p50 answer", p50, "ms")
        result.add("non-2xx answers", load.failed, "", 0, "<=")
        result.add("address-events in the inbox (check)", stored_inbox, "")
        result.add("mapping backlog at the end (address-events)", backlog, "")
        result.add("seconds to map that backlog after the load", mapped - stopped, "s")
        result.add("service CPU (cores, average)", cores, "cores")
        result.add("service peak RSS", probe.peak_mb(), "MB")
        result.add("concurrent connections", concurrency, "")
        result.add("service replicas", len(processes), "")
        result.add("seconds of load", load.seconds, "s")
        if single:
            bare_port = free_port()
            bare = start_bare(bare_port)
            bare_requests = [(loadgen.post("/", body, "127.0.0.1", bare_port), units)
                             for body, units in ((r.split(b"\r\n\r\n", 1)[1], u)
                                                 for r, u in requests)]
            bare_load = loadgen.closed_loop("127.0.0.1", bare_port, bare_requests,
                                            concurrency=concurrency, duration=duration)
            bare_rate = bare_load.ok / bare_load.seconds
            result.add("bare endpoint answers per second (same stack)", bare_rate, "/s")
            result.add("ratio to the bare endpoint", (load.ok / load.seconds) / bare_rate, "")
        console.print(f"{name}: statuses {load.statuses}")
    finally:
        if bare is not None:
            bare.terminate()
            bare.wait(10)
        world.close()
    return result
