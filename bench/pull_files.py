"""``pull --audience files``: an EventTypeID 14 audience of 1,000,000 customers in deflate Avro
files of 100,000 (Optimove's largest file size) on the GCS emulator, read by the service with
google-cloud-storage and fastavro until the campaign is PULLED; in the same run, the REST
pull of the same audience (GetCustomerSendDetailsByChannel pages of 10,000 under 50 calls per
10 s) as the baseline. Both report customers per second and the service's peak RSS.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time

from bench.common import Result, ServiceProbe, World, console, wait_for
from bench.pull import audience, sizes
from optibridge.demo import EMAIL_CAMPAIGN, EMAIL_CHANNEL, TENANT
from optibridge.domain import ChannelType
from optibridge.pipeline.listener import listener_url


def file_size(quick: bool) -> int:
    return 4_000 if quick else 100_000


def _pulled(world: World) -> bool:
    return bool(world.scalar("SELECT state FROM campaign") == "pulled")


def rest_pull(quick: bool) -> tuple[float, float]:
    """(customers per second, peak RSS MB) of the REST pull, fire to PULLED."""
    count, page, rate_limit = sizes(quick)
    world = World(customers=count, page_size=page, rate_limit=rate_limit)
    try:
        world.start_sandboxes()
        asyncio.run(world._register())
        template = world.platform.add_template("Offer", ChannelType.EMAIL, "<p>{{FirstName}}</p>")
        world.optimove.load_audience(TENANT, EMAIL_CAMPAIGN, EMAIL_CHANNEL,
                                     audience(count, template))
        process = world.start_service_process()
        probe = ServiceProbe(process.pid)
        fired = time.time()
        world.optimove.notify(TENANT, 13, campaign_id=EMAIL_CAMPAIGN, channel_id=EMAIL_CHANNEL)
        wait_for("REST campaign PULLED", lambda: _pulled(world), timeout=900, alive=process)
        seconds = float(world.scalar("SELECT pulled_at FROM campaign")) - fired
        return count / seconds, probe.peak_mb()
    finally:
        world.close()


def files_pull(quick: bool) -> tuple[float, float, int, float]:
    """(customers per second, peak RSS MB, files, seconds to publish) of the event-14 pull,
    webhook to PULLED."""
    count = sizes(quick)[0]
    world = World(customers=count, audience_source="files", file_size=file_size(quick))
    try:
        world.start_sandboxes()
        assert world.publisher is not None
        template = world.platform.add_template("Offer", ChannelType.EMAIL, "<p>{{FirstName}}</p>")
        when = (dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
                + dt.timedelta(hours=1))
        names = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken")
        began = time.monotonic()
        published = world.publisher.publish(
            campaign_id=EMAIL_CAMPAIGN, channel_id=EMAIL_CHANNEL, template_id=template,
            scheduled_time=when, fields=["Email", "FirstName"], file_size=file_size(quick),
            customers=({"CustomerID": f"C{i:08d}", "Email": f"customer{i}@example.com",
                        "FirstName": names[i % 6]} for i in range(count)))
        publish_seconds = time.monotonic() - began
        process = world.start_service_process()
        probe = ServiceProbe(process.pid)
        fired = time.time()
        status = world.publisher.fire(listener_url(world.config, TENANT), published)
        if status != 200:
            raise RuntimeError(f"the webhook was answered {status}")
        wait_for("files campaign PULLED", lambda: _pulled(world), timeout=900, alive=process)
        seconds = float(world.scalar("SELECT pulled_at FROM campaign")) - fired
        pulled = int(world.scalar("SELECT pulled FROM campaign"))
        if pulled != count:
            raise RuntimeError(f"{pulled} customers pulled of {count}")
        return count / seconds, probe.peak_mb(), len(published.customer_files), publish_seconds
    finally:
        world.close()


def run(quick: bool) -> dict[str, Result]:
    result = Result("pull-files", quick)
    load = os.getloadavg()[0]
    rest_rate, rest_rss = rest_pull(quick)
    files_rate, files_rss, files, publish_seconds = files_pull(quick)
    console.print(f"REST {rest_rate:,.0f}/s, files {files_rate:,.0f}/s "
                  f"({files} files published in {publish_seconds:.1f} s)")
    result.add("customers", sizes(quick)[0], "")
    # The comparison is the ratio of one run's two rates (a median of targets would mix runs).
    result.add("files pull: customers per second (webhook to PULLED)", files_rate, "/s")
    result.add("REST pull: customers per second (notification to PULLED)", rest_rate, "/s")
    result.add("files pull / REST pull", files_rate / rest_rate, "x", 1.0)
    result.add("files pull: service peak RSS", files_rss, "MB", 200.0, "<=")
    result.add("REST pull: service peak RSS", rest_rss, "MB")
    result.add("customer files", files, "")
    result.add("load average (1 min) at the start", load, "")
    result.notes.append("files of 100,000 customers (Optimove's largest file size), "
                        "deflate Avro on the loopback GCS emulator; the REST pull of the same "
                        "audience is measured in the same run")
    return {"pull-files": result}
