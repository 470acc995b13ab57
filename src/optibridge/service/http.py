"""The HTTP endpoints Optimove and the platform call. Thin: parse, call the pipeline, answer."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from optibridge.optimove.inbound import MAX_NOTIFICATION_BYTES, parse_notification
from optibridge.pipeline.callbacks import accept_callback, verified_send
from optibridge.pipeline.listener import record_notification
from optibridge.pipeline.nudges import Loop
from optibridge.platform.callbacks import MAX_CALLBACK_BYTES
from optibridge.refusals import Refusal, Refused
from optibridge.service.assembly import Service

# The HTTP answer to each kind of refusal; the pipeline and the parsers never pick one.
STATUS_OF: dict[Refusal, int] = {Refusal.MALFORMED: 400, Refusal.FORBIDDEN: 403,
                                 Refusal.TOO_LARGE: 413, Refusal.UNPROCESSABLE: 422}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading them all."""
    too_large = Refused(f"body is over {limit} bytes", Refusal.TOO_LARGE)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        parts.append(chunk)
    return b"".join(parts)


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def refused(refusal: Refused) -> JSONResponse:
    return error(STATUS_OF[refusal.refusal], refusal.reason)


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def listener_tenant(request: Request, service: Service) -> str | None:
    """The tenant of a listener URL whose token is right, else None (answer 404 then,
    which says nothing about which part was wrong)."""
    tenant: str = request.path_params["tenant"]
    token: str = request.path_params["token"]
    if tenant in service.contexts and hmac.compare_digest(
            token.encode(), service.config.listener_token(tenant).encode()):
        return tenant
    return None


async def listener(request: Request) -> Response:
    """Flow 3: record Optimove's notification durably, then answer at once."""
    service = _service(request)
    tenant = listener_tenant(request, service)
    if tenant is None:
        return error(404, "not found")
    try:
        body = await read_body(request, MAX_NOTIFICATION_BYTES)
        notification = parse_notification(body, service.config.tenant(tenant).files)
    except Refused as refusal:
        return refused(refusal)
    notification_id = await record_notification(service.store, tenant, notification)
    service.contexts[tenant].nudges.nudge(Loop.PULL)
    return JSONResponse({"recorded": notification_id})


async def callback(request: Request) -> Response:
    """Flow 6 inbound: a platform event callback for one send."""
    service = _service(request)
    tenant = request.path_params["tenant"]
    if tenant not in service.contexts:
        return error(404, "not found")
    try:
        send_id = verified_send(service.signer, tenant, request.url.query)
        body = await read_body(request, MAX_CALLBACK_BYTES)
        accepted = await accept_callback(send_id, service.writer, service.store, body,
                                         request.url.query)
    except Refused as refusal:
        return refused(refusal)
    return JSONResponse({"send": accepted.send_id, "event": str(accepted.event),
                         "addresses": accepted.addresses})


routes = [
    Route("/listener/{tenant}/{token}", listener, methods=["POST"]),
    Route("/callbacks/{tenant}", callback, methods=["POST"]),
]
