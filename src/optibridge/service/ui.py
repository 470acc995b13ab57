"""The status page at ``/ui``: tenants, campaigns with a funnel per send, the reporting
backlog, the rate limits in use and the last errors. Server-rendered; charts are inline SVG."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from optibridge.domain import BatchState
from optibridge.logs import mask
from optibridge.service.assembly import Service
from optibridge.service.auth import protected
from optibridge.service.metrics import rate_limits_in_use
from optibridge.store.status import FUNNEL, Backlog, CampaignSummary, SendFunnel

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
COLORS = {"recipients": "#64748b", "submitted": "#0ea5e9", "delivered": "#2563eb",
          "opened": "#16a34a", "clicked": "#15803d", "bounced": "#f59e0b",
          "dropped": "#dc2626"}


@dataclass(frozen=True)
class Bar:
    stage: str
    value: int | None  # None: the stage does not exist on this channel
    share: float  # of the longest bar, 0..1
    color: str


@dataclass(frozen=True)
class TenantRow:
    name: str
    notifications: int
    backlog: Backlog
    backlog_age: float
    optimove_in_use: float
    platform_in_use: float
    batches: dict[str, int]
    lease: str | None
    paused: str | None = None  # why reporting is paused (known to the lease holder)


def funnel(send: SendFunnel) -> list[Bar]:
    """The bars of one send's funnel: recipients, then each event."""
    values: dict[str, int | None] = {"recipients": send.recipients}
    for stage in FUNNEL:
        sms_submitted = stage == "submitted" and send.channel_type == "sms"
        values[stage] = None if sms_submitted else send.count(stage)
    longest = max([v for v in values.values() if v is not None] + [1])
    return [Bar(stage, value, (value or 0) / longest, COLORS[stage])
            for stage, value in values.items()]


def _ago(moment: float | None) -> str:
    if moment is None:
        return "—"
    seconds = max(0.0, time.time() - moment)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _utc(moment: float | dt.datetime | None) -> str:
    if moment is None:
        return "—"
    if isinstance(moment, dt.datetime):
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


templates.env.filters.update(ago=_ago, duration=_duration, utc=_utc, mask=mask)
templates.env.globals.update(funnel=funnel, FUNNEL=FUNNEL, COLORS=COLORS)


async def tenant_rows(service: Service) -> list[TenantRow]:
    store = service.store
    notifications = await store.notification_counts()
    batches = await store.batch_state_counts()
    shares = rate_limits_in_use(service)
    now = time.time()
    rows = []
    for name in service.config.tenants:
        backlog = await store.report_backlog(name)
        lease = await store.lease_holder(name)
        rows.append(TenantRow(
            name=name, notifications=notifications.get(name, 0), backlog=backlog,
            backlog_age=backlog.age(now), optimove_in_use=shares.get((name, "optimove"), 0.0),
            platform_in_use=shares.get((name, "platform"), 0.0),
            batches={str(s): batches.get((name, s), 0) for s in BatchState},
            lease=lease[0] if lease and lease[1] > now else None,
            paused=_paused(service, name)))
    return rows


def _paused(service: Service, name: str) -> str | None:
    pause = service.contexts[name].report_pause
    return pause.reason if pause.paused else None


def _page(request: Request, name: str, context: dict[str, Any], status: int = 200
          ) -> Response:
    return templates.TemplateResponse(request, name, {"now": time.time(), **context},
                                      status_code=status)


MAX_ID = 2**63 - 1  # a BIGINT: a larger number names no row (and SQLite cannot bind it)


def _number(value: str) -> int | None:
    """A row number from a URL, or None ("²".isdigit() is true; int("²") fails)."""
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_ID:
        return None
    return int(value)


@protected
async def overview(request: Request) -> Response:
    service: Service = request.app.state.service
    return _page(request, "index.html", {
        "tenants": await tenant_rows(service),
        "inbox_backlog": await service.store.inbox_backlog(),
        "campaigns": await service.store.campaign_summaries(limit=50),
        "errors": await service.store.recent_errors(15),
        "work": await service.store.work_failures(),
    })


@protected
async def campaign_page(request: Request) -> Response:
    service: Service = request.app.state.service
    pk = _number(str(request.path_params["pk"]))
    found: list[CampaignSummary] = [] if pk is None else await service.store.campaign_summaries(
        campaign_pk=pk, limit=1)
    if not found:
        return _page(request, "missing.html", {"pk": request.path_params["pk"]}, 404)
    campaign = found[0]
    batches = await service.store.batch_state_counts(campaign)
    return _page(request, "campaign.html", {
        "campaign": campaign,
        "batches": {str(s): batches.get((campaign.tenant, s), 0) for s in BatchState},
    })


BATCH_PAGE = 100


def _int(request: Request, name: str) -> int | None:
    return _number(request.query_params.get(name, ""))


@protected
async def batches_page(request: Request) -> Response:
    """Report batches of a tenant, by state and campaign."""
    service: Service = request.app.state.service
    tenant = request.query_params.get("tenant") or next(iter(service.config.tenants))
    if tenant not in service.config.tenants:
        return _page(request, "missing.html", {"pk": tenant, "what": "tenant"}, 404)
    known = {str(s): s for s in BatchState}
    asked = [v for v in request.query_params.get("state", "").split(",") if v in known]
    states = [known[v] for v in asked] or list(BatchState)
    campaign = _int(request, "campaign")
    batches = await service.store.batches(tenant, states, BATCH_PAGE, campaign_id=campaign,
                                          after=_int(request, "after") or 0)
    counts = await service.store.batch_counts(tenant)
    return _page(request, "batches.html", {
        "tenant": tenant, "campaign": campaign, "batches": batches, "limit": BATCH_PAGE,
        "states": [str(s) for s in states],
        "counts": {str(s): counts.get(s, 0) for s in BatchState}})


@protected
async def batch_page(request: Request) -> Response:
    service: Service = request.app.state.service
    batch_id = _number(str(request.path_params["id"]))
    detail = None if batch_id is None else await service.store.batch_detail(batch_id)
    if detail is None or detail.batch.tenant not in service.config.tenants:
        return _page(request, "missing.html", {"pk": request.path_params["id"],
                                               "what": "report batch"}, 404)
    return _page(request, "batch.html", {"d": detail})


routes: list[BaseRoute] = [
    Route("/ui", overview),
    Route("/ui/campaigns/{pk:int}", campaign_page),
    Route("/ui/batches", batches_page),
    Route("/ui/batches/{id:int}", batch_page),
    Mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="static"),
]
