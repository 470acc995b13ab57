"""The HTTP endpoints Optimove and the platform call. Thin: parse, call the pipeline, answer."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from optibridge.pipeline.callbacks import (
    MAX_CALLBACK_BYTES,
    CallbackRefused,
    accept_callback,
    verified_send,
)
from optibridge.pipeline.listener import (
    MAX_NOTIFICATION_BYTES,
    NotificationError,
    parse_notification,
    record_notification,
)
from optibridge.service.assembly import Service


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        parts.append(chunk)
    return b"".join(parts)


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


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
        notification = parse_notification(body, service.config.tenant(tenant))
    except BodyTooLarge:
        return error(413, f"body is over {MAX_NOTIFICATION_BYTES} bytes")
    except NotificationError as problem:
        return error(400, str(problem))
    notification_id = await record_notification(service.store, tenant, notification)
    service.contexts[tenant].wake.set()
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
    except BodyTooLarge:
        return error(413, f"body is over {MAX_CALLBACK_BYTES} bytes")
    except CallbackRefused as refused:
        return error(refused.status, refused.reason)
    return JSONResponse({"send": accepted.send_id, "event": str(accepted.event),
                         "addresses": accepted.addresses})


routes = [
    Route("/listener/{tenant}/{token}", listener, methods=["POST"]),
    Route("/callbacks/{tenant}", callback, methods=["POST"]),
]
