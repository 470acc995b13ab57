"""The HTTP endpoints Optimove and the platform call. Thin: parse, call the pipeline, answer."""

from __future__ import annotations

import hmac
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

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
    return await receive_body(request.scope, request.receive, limit)


async def receive_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """``read_body`` for a plain ASGI app."""
    too_large = Refused(f"body is over {limit} bytes", Refusal.TOO_LARGE)
    declared = Headers(scope=scope).get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    parts, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large
        parts.append(chunk)
        if not message.get("more_body", False):
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


class CallbackEndpoint:
    """Flow 6 inbound: a platform event callback for one send.

    A plain ASGI app, not a Starlette request handler: the platform calls it thousands of
    times a second, and a request and a response object, with the wrappers around ``send``
    and around the handler, are paid on every call. Its errors still reach the app's
    exception handlers (a database away answers 503)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service: Service = scope["app"].state.service
        tenant = scope["path_params"]["tenant"]
        if tenant not in service.contexts:
            await error(404, "not found")(scope, receive, send)
            return
        query = scope["query_string"].decode("latin-1")
        try:
            send_id = verified_send(service.signer, tenant, query)
            body = await receive_body(scope, receive, MAX_CALLBACK_BYTES)
            accepted = await accept_callback(send_id, service.writer, service.store, body, query)
        except Refused as refusal:  # rare: a Starlette response will do
            await refused(refusal)(scope, receive, send)
            return
        await answer(send, {"send": accepted.send_id, "event": str(accepted.event),
                            "addresses": accepted.addresses})


async def answer(send: Send, content: dict[str, Any]) -> None:
    """200 with a JSON body, as ``JSONResponse`` would send it."""
    body = orjson.dumps(content)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


routes = [
    Route("/listener/{tenant}/{token}", listener, methods=["POST"]),
    Route("/callbacks/{tenant}", CallbackEndpoint(), methods=["POST"]),
]
