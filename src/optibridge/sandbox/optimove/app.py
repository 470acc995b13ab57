"""The sandbox's HTTP face: Optimove's API on every path form, plus a small admin API.

The admin API under ``/sandbox/`` has no authentication: bind the sandbox to loopback or a
trusted network only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from optibridge.sandbox.optimove.faults import Fault, FaultPlan
from optibridge.sandbox.optimove.sandbox import OptimoveSandbox, Outcome
from optibridge.sandbox.optimove.state import AudienceRow

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class LostResponse(Response):
    """Starts a 200 answer, sends part of it, then stops: uvicorn closes the connection
    because the response is incomplete, so the client sees a transport error after the
    request was applied."""

    def __init__(self, body: bytes) -> None:
        super().__init__(b"", status_code=200, media_type="application/json")
        self._partial = body[: len(body) // 2]
        self.headers["content-length"] = str(len(body) + 64)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self._partial, "more_body": True})
        # Returning here without the last body message is what drops the connection.


def _response(outcome: Outcome) -> Response:
    if outcome.fault is Fault.LOST_RESPONSE:
        return LostResponse(outcome.body)
    return Response(outcome.body, status_code=outcome.status, headers=dict(outcome.headers),
                    media_type="application/json")


def create_app(sandbox: OptimoveSandbox) -> Starlette:
    """The ASGI app serving ``sandbox`` (Optimove API + ``/sandbox/`` admin API)."""

    async def api(request: Request) -> Response:
        body = await request.body()
        outcome = sandbox.call(api_key=request.headers.get("x-api-key"),
                               method=request.method, path=request.url.path,
                               query=request.query_params.multi_items(), raw_body=body)
        if outcome.slow_seconds:
            await asyncio.sleep(outcome.slow_seconds)
        return _response(outcome)

    async def save_event(request: Request) -> Response:
        outcome = sandbox.save_event(path=request.url.path,
                                     host=request.headers.get("host", ""),
                                     headers={k.lower(): v for k, v in request.headers.items()},
                                     raw_body=await request.body())
        if outcome.slow_seconds:
            await asyncio.sleep(outcome.slow_seconds)
        return _response(outcome)

    admin = _Admin(sandbox)
    index = _index({
        "PUT /sandbox/faults": "fault plan: error_rate, rate_limit_rate, lost_response_rate, ...",
        "GET /sandbox/faults": "the fault plan in force",
        "POST /sandbox/{tenant}/audiences/{campaign_id}/{channel_id}":
            "load audience rows: [{CustomerID, TemplateID, ScheduledTime, Attributes}]",
        "POST /sandbox/{tenant}/channels": "add a channel",
        "POST /sandbox/{tenant}/notify":
            "fire a notification to the registered listeners: {EventTypeID, CampaignID, "
            "ChannelID}",
        "GET /sandbox/{tenant}/journal": "every API call the sandbox served",
        "GET /sandbox/{tenant}/interactions": "what UpdateCampaignInteractions added up",
        "GET /sandbox/{tenant}/metrics": "what UpdateCampaignMetrics holds",
        "GET /sandbox/{tenant}/events": "what saveEvent accepted (each repeat counts)",
        "POST /metric-{tenantID}/api/saveEvent": "saveEvent (or Host: metric-{tenantID}...)",
    })
    routes = [
        Route("/sandbox", index, methods=["GET"]),
        Route("/sandbox/", index, methods=["GET"]),
        Route("/sandbox/faults", admin.faults, methods=["PUT", "GET"]),
        Route("/sandbox/{tenant}/audiences/{campaign_id:int}/{channel_id:int}",
              admin.audience, methods=["POST"]),
        Route("/sandbox/{tenant}/channels", admin.channel, methods=["POST"]),
        Route("/sandbox/{tenant}/notify", admin.notify, methods=["POST"]),
        Route("/sandbox/{tenant}/journal", admin.journal, methods=["GET"]),
        Route("/sandbox/{tenant}/interactions", admin.interactions, methods=["GET"]),
        Route("/sandbox/{tenant}/metrics", admin.metrics, methods=["GET"]),
        Route("/sandbox/{tenant}/events", admin.events, methods=["GET"]),
        Route("/api/saveEvent", save_event, methods=["POST"]),
        Route("/{prefix}/api/saveEvent", save_event, methods=["POST"]),
        Route("/{path:path}", api, methods=_METHODS),
    ]
    return Starlette(routes=routes)


def _index(endpoints: dict[str, str]) -> Callable[[Request], Awaitable[Response]]:
    """``GET /sandbox/``: what the admin API offers (the URL ``optibridge sandbox`` prints)."""

    async def index(_: Request) -> Response:
        return JSONResponse({"sandbox": "optimove", "admin": endpoints})

    return index


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise _AdminError("the body must be JSON") from None


class _AdminError(Exception):
    pass


def _audience_row(item: Any) -> AudienceRow:
    if not isinstance(item, dict):
        raise _AdminError("each row is an object {CustomerID, TemplateID, ScheduledTime, "
                          "Attributes}")
    try:
        attributes = item.get("Attributes") or {}
        if not isinstance(attributes, dict):
            raise TypeError("Attributes must be an object")
        return AudienceRow(
            customer_id=str(item["CustomerID"]), template_id=int(item["TemplateID"]),
            scheduled_time=datetime.fromisoformat(str(item["ScheduledTime"])),
            attributes={str(k): None if v is None else str(v) for k, v in attributes.items()})
    except (KeyError, TypeError, ValueError) as error:
        raise _AdminError(f"bad audience row {str(item)[:200]}: {error}") from None


class _Admin:
    """Endpoints a partner uses to rehearse from outside the process."""

    def __init__(self, sandbox: OptimoveSandbox) -> None:
        self.sandbox = sandbox

    async def faults(self, request: Request) -> Response:
        if request.method == "PUT":
            try:
                # An empty body clears the plan, like JSON null.
                data = await _json_body(request) if (await request.body()).strip() else None
                self.sandbox.set_faults(FaultPlan.from_json(data))
            except (_AdminError, ValueError, TypeError) as error:
                return _error(str(error))
        plan = self.sandbox.faults
        return JSONResponse(None if plan is None else plan.to_json())

    def _tenant(self, request: Request) -> str:
        tenant = str(request.path_params["tenant"])
        if tenant not in self.sandbox.tenants:
            raise KeyError(tenant)
        return tenant

    async def audience(self, request: Request) -> Response:
        try:
            tenant = self._tenant(request)
            rows = await _json_body(request)
            if not isinstance(rows, list):
                raise _AdminError("the body must be a JSON array of rows")
            parsed = [_audience_row(item) for item in rows]
            total = self.sandbox.load_audience(tenant, request.path_params["campaign_id"],
                                               request.path_params["channel_id"], parsed)
        except KeyError:
            return _error("unknown tenant", 404)
        except (_AdminError, ValueError) as error:
            return _error(str(error))
        return JSONResponse({"loaded": len(parsed), "total": total})

    async def channel(self, request: Request) -> Response:
        try:
            tenant = self._tenant(request)
            data = await _json_body(request)
            if not isinstance(data, dict) or not isinstance(data.get("ChannelID"), int) \
                    or not isinstance(data.get("ChannelName"), str):
                raise _AdminError("send {ChannelID: int, ChannelName: str}")
        except KeyError:
            return _error("unknown tenant", 404)
        except _AdminError as error:
            return _error(str(error))
        self.sandbox.add_execution_channel(tenant, data["ChannelID"], data["ChannelName"])
        return JSONResponse(self.sandbox.execution_channels(tenant))

    async def notify(self, request: Request) -> Response:
        try:
            tenant = self._tenant(request)
            data = await _json_body(request)
            if not isinstance(data, dict) or not isinstance(data.get("EventTypeID"), int):
                raise _AdminError("send {EventTypeID: int, CampaignID?, ChannelID?, ...}")
        except KeyError:
            return _error("unknown tenant", 404)
        except _AdminError as error:
            return _error(str(error))
        extra = {k: v for k, v in data.items()
                 if k not in ("EventTypeID", "CampaignID", "ChannelID")}
        # The POSTs are synchronous: keep them off the event loop serving the API.
        statuses = await run_in_threadpool(
            self.sandbox.notify, tenant, data["EventTypeID"], campaign_id=data.get("CampaignID"),
            channel_id=data.get("ChannelID"), extra=extra)
        return JSONResponse({"statuses": statuses})

    def _of_tenant(self, request: Request, view: Callable[[str], Any]) -> Response:
        """``view`` of the path's tenant as JSON, or 404 for a tenant the sandbox lacks."""
        try:
            tenant = self._tenant(request)
        except KeyError:
            return _error("unknown tenant", 404)
        return JSONResponse(view(tenant))

    async def journal(self, request: Request) -> Response:
        return self._of_tenant(request, lambda tenant: [
            entry.to_json() for entry in self.sandbox.journal(tenant)])

    async def interactions(self, request: Request) -> Response:
        return self._of_tenant(request, lambda tenant: [
            row.to_json() for row in self.sandbox.reported_interactions(tenant)])

    async def events(self, request: Request) -> Response:
        return self._of_tenant(request, lambda tenant: [
            event.to_json() for event in self.sandbox.received_events(tenant)])

    async def metrics(self, request: Request) -> Response:
        return self._of_tenant(request, lambda tenant: [
            {"CampaignID": campaign, "ChannelID": channel, "TemplateID": template,
             "MetricID": metric, "MetricValue": value}
            for (campaign, channel, template, metric), value
            in sorted(self.sandbox.metrics(tenant).items())])
