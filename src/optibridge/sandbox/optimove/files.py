"""Optimove's side of EventTypeID 14 in the sandbox: a campaign's metadata file and its
customer files (deflate Avro, ``customers_file001..NNN``) written into a bucket of the GCS
emulator under a fresh customer-supplied key, and the UI-registered webhook fired.

    publisher = EngagementPublisher(GcsEmulator(root))
    published = publisher.publish(campaign_id=1, channel_id=504, template_id=7,
                                  scheduled_time=when, customers=rows, file_size=10_000)
    publisher.fire(webhook_url, published)      # POST the payload; the HTTP status

Faults act on ``publisher.storage``: ``remove``/``truncate``/``slow_down`` one of
``published.customer_files``.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import itertools
import json
import logging
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from optibridge.sandbox.gcs import GcsEmulator

log = logging.getLogger(__name__)
DEFAULT_BUCKET = "optigration-external-eu"  # the bucket name in Optimove's SDK README


@dataclass(frozen=True)
class Published:
    """One campaign published as event 14: the webhook payload and the files written."""

    payload: Mapping[str, Any]
    metadata: Mapping[str, Any]
    metadata_file: str
    customer_files: Sequence[str]
    bucket: str
    key: str = field(repr=False)

    @property
    def customers(self) -> int:
        return int(self.metadata["NumberOfCustomers"])


def avro_schema(fields: Sequence[str], customer_field: str) -> dict[str, Any]:
    """A record of the customer ID and nullable string attributes (Optimove's own schema is
    not public; each file carries whichever it was written with)."""
    return {"type": "record", "name": "Customer", "namespace": "optimove.engagement",
            "fields": [{"name": customer_field, "type": "string"},
                       *({"name": name, "type": ["null", "string"], "default": None}
                         for name in fields if name != customer_field)]}


@dataclass
class EngagementPublisher:
    storage: GcsEmulator
    bucket: str = DEFAULT_BUCKET
    tenant_id: int = 1000
    _engagement: int = 70_000
    sent: list[tuple[str, int]] = field(default_factory=list)  # (url, status) per webhook

    def publish(self, *, campaign_id: int, channel_id: int, template_id: int,
                scheduled_time: dt.datetime, customers: Iterable[Mapping[str, Any]],
                fields: Sequence[str], file_size: int = 10_000,
                customer_field: str = "CustomerID", key: str | None = None,
                extra_metadata: Mapping[str, Any] | None = None) -> Published:
        """Write the customers (mappings of ``customer_field`` and ``fields``) as files of
        ``file_size`` records, then the metadata; ``key`` (base64 AES-256) or a fresh one."""
        import fastavro

        self._engagement += 1
        key = key or base64.b64encode(secrets.token_bytes(32)).decode()
        folder = f"{self.tenant_id}/{self._engagement}/customers"
        schema = fastavro.parse_schema(avro_schema(fields, customer_field))
        names, total, rows = [], 0, iter(customers)
        for number in itertools.count(1):
            chunk = list(itertools.islice(rows, file_size))
            if not chunk:
                break
            buffer = io.BytesIO()
            fastavro.writer(buffer, schema, chunk, codec="deflate")
            name = f"{folder}/customers_file{number:03d}.deflate.avro"
            self.storage.put(self.bucket, name, buffer.getvalue(), key=key)
            names.append(name)
            total += len(chunk)
        when = scheduled_time.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
        metadata = {"ActionID": campaign_id * 10, "ActionName": f"Action {campaign_id}",
                    "CampaignID": campaign_id, "CampaignPlanID": campaign_id,
                    "ChannelID": channel_id, "ChannelName": "Email" if channel_id == 504
                    else f"Channel {channel_id}", "EngagementID": self._engagement,
                    "NumberOfCustomers": total, "NumberOfFiles": len(names),
                    "PlanDetailChannelID": channel_id, "Promotions": [],
                    "ScheduledTime": when, "TargetGroupName": "Sandbox group",
                    "TemplateID": template_id, "TemplateName": f"Template {template_id}",
                    "TenantID": self.tenant_id, "Duration": 1, "Tags": [],
                    "CampaignType": "No Control", "IsMultiChannel": False,
                    "EngagementTimezone": "UTC", **(extra_metadata or {})}
        metadata_file = f"{self.tenant_id}/{self._engagement}/metadata.json"
        self.storage.put(self.bucket, metadata_file, json.dumps(metadata).encode(), key=key)
        payload = {"EventTypeID": 14,
                   "TimeStamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
                   "CampaignID": campaign_id, "EngagementID": self._engagement,
                   "TenantID": self.tenant_id, "BucketName": self.bucket,
                   "DecryptionKey": key, "CustomersFolderPath": folder,
                   "MetadataFilePath": metadata_file, "ChannelID": channel_id}
        return Published(payload, metadata, metadata_file, names, self.bucket, key)

    def fire(self, url: str, published: Published, timeout: float = 10.0) -> int:
        """POST the webhook as Optimove does; the status (0: the URL was unreachable)."""
        try:
            with httpx.Client(timeout=timeout) as client:
                status = client.post(url, json=dict(published.payload)).status_code
        except httpx.HTTPError as error:
            log.warning("sandbox: webhook %s unreachable: %s", url, error)
            status = 0
        self.sent.append((url, status))
        return status


def create_engagement_app(publisher: EngagementPublisher) -> Any:
    """The GCS emulator's API plus an admin API for a partner's rehearsal (loopback only):

    - ``POST /sandbox/engagements``: ``{CampaignID, ChannelID, TemplateID, ScheduledTime,
      Fields: [...], Customers: [{CustomerID, <field>: value}], FileSize?, WebhookURL?}``
      publishes the files (and POSTs the webhook when ``WebhookURL`` is given); answers the
      payload, with its DecryptionKey, and the file names.
    - ``POST /sandbox/engagements/faults``: ``{File, Fault: missing|truncated|slow,
      Keep?: 0.5, Seconds?: 5}`` acts on one published file.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    from optibridge.sandbox.gcs import create_app as gcs_app

    def refused(message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=400)

    async def publish(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body())
            when = dt.datetime.fromisoformat(str(body["ScheduledTime"]).replace("Z", ""))
            published = publisher.publish(
                campaign_id=int(body["CampaignID"]), channel_id=int(body["ChannelID"]),
                template_id=int(body["TemplateID"]), scheduled_time=when,
                fields=[str(name) for name in body.get("Fields", [])],
                customers=list(body["Customers"]), file_size=int(body.get("FileSize", 10_000)))
        except (ValueError, KeyError, TypeError) as error:
            return refused(f"{type(error).__name__}: {error}")
        status = None
        if body.get("WebhookURL"):
            from starlette.concurrency import run_in_threadpool

            status = await run_in_threadpool(publisher.fire, str(body["WebhookURL"]), published)
        return JSONResponse({"payload": dict(published.payload), "metadata_file":
                             published.metadata_file, "customer_files":
                             list(published.customer_files), "webhook_status": status})

    async def fault(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body())
            name, kind = str(body["File"]), str(body["Fault"])
            if kind == "missing":
                publisher.storage.remove(publisher.bucket, name)
            elif kind == "truncated":
                publisher.storage.truncate(publisher.bucket, name, float(body.get("Keep", 0.5)))
            elif kind == "slow":
                publisher.storage.slow_down(publisher.bucket, name,
                                            float(body.get("Seconds", 5.0)))
            else:
                return refused(f"Fault {kind!r}: one of missing, truncated, slow")
        except (ValueError, KeyError, TypeError) as error:
            return refused(f"{type(error).__name__}: {error}")
        return JSONResponse({"file": name, "fault": kind})

    async def index(request: Request) -> JSONResponse:
        return JSONResponse({"admin": {
            "POST /sandbox/engagements": "publish a campaign as EventTypeID 14",
            "POST /sandbox/engagements/faults": "missing, truncated or slow file"}})

    return Starlette(routes=[
        Route("/sandbox/engagements", index, methods=["GET"]),
        Route("/sandbox/engagements", publish, methods=["POST"]),
        Route("/sandbox/engagements/faults", fault, methods=["POST"]),
        Mount("/", app=gcs_app(publisher.storage)),
    ])
