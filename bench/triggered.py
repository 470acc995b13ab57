"""``triggered``: 50 EventTypeID 11 triggers a second for 60 s at ``POST /triggered/...``,
paced (open loop) by a load generator in its own process.

Figures: the endpoint's answer time, and for each trigger the time from its arrival (as the
service recorded it) to its platform campaign being READY (the send's ``ready_at``).
"""

from __future__ import annotations

import json

from bench import loadgen
from bench.common import Result, ServiceProbe, World, console, percentile, wait_for
from optibridge.demo import TENANT
from optibridge.domain import ChannelType

CHANNEL = 511
CAMPAIGN = 9001
RATE = 50.0


def run(quick: bool) -> Result:
    seconds = 3.0 if quick else 60.0
    count = int(RATE * seconds)
    result = Result("triggered", quick)
    channel = {"type": "email", "address_attribute": "Email", "triggered": True,
               "personalization": ["FirstName"],
               "personalization_defaults": {"FirstName": "friend"}}
    world = World(customers=10, channels={str(CHANNEL): channel})
    try:
        world.start_sandboxes()
        template = world.platform.add_template("Cart", ChannelType.EMAIL,
                                               "<p>Hi {{FirstName}}, your cart</p>")
        process = world.start_service_process()
        path = f"/triggered/{TENANT}/{world.config.listener_token(TENANT)}"
        requests = []
        for i in range(count):
            body = {"EventTypeID": 11, "TriggerName": "cart abandoned",
                    "CustomerID": f"T{i:06d}", "CampaignID": CAMPAIGN, "ActionID": 55,
                    "ChannelID": CHANNEL, "TemplateID": template,
                    "Personalization": {"FirstName": f"N{i}", "Email": f"t{i}@example.com"}}
            requests.append((loadgen.post(path, json.dumps(body).encode(), "127.0.0.1",
                                          world.service_port, "application/json"), 1))
        probe = ServiceProbe(process.pid)
        load = loadgen.paced("127.0.0.1", world.service_port, requests, rate=RATE)
        console.print(f"triggered: statuses {load.statuses}")

        def all_ready() -> bool:
            return int(world.scalar(
                "SELECT count(*) FROM trigger t JOIN send s ON s.id = t.send_id "
                "WHERE s.ready_at IS NOT NULL")) >= load.ok

        wait_for("every trigger's campaign READY", all_ready, timeout=300, poll=0.2,
                 alive=process)
        delays = [ready - received for received, ready in world.query(
            "SELECT t.received_at, s.ready_at FROM trigger t JOIN send s ON s.id = t.send_id")]
        sends = int(world.scalar("SELECT count(DISTINCT send_id) FROM trigger"))
        full = not quick
        result.add("triggers accepted per second", load.ok / load.seconds, "/s")
        result.add("listener answer p99", 1000 * percentile(load.latencies, 0.99), "ms",
                   20.0, "<=")
        result.add("listener answer p50", 1000 * percentile(load.latencies, 0.5), "ms")
        result.add("received -> READY p50", 1000 * percentile(delays, 0.5), "ms",
                   300.0, "<=")
        result.add("received -> READY p99", 1000 * percentile(delays, 0.99), "ms",
                   1000.0, "<=")
        result.add("non-2xx answers", load.failed, "", 0, "<=")
        result.add("platform campaigns made", sends, "")
        result.add("triggers", load.ok, "", count if full else None)
        result.add("service CPU (cores, average)", probe.cores(), "cores")
        result.add("service peak RSS", probe.peak_mb(), "MB")
    finally:
        world.close()
    return result
