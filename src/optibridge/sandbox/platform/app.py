"""The sandbox's HTTP face: the platform API of platform-api.md, and a small admin API.

Request bodies are parsed by hand (``parse_qsl``, ``json``): Starlette's form parser needs
python-multipart and caps fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from optibridge.sandbox.platform.contract import Channel
from optibridge.sandbox.platform.core import PlatformSandbox
from optibridge.sandbox.platform.model import PlatformFaults
from optibridge.sandbox.platform.validate import ApiError, bad, page

Handler = Callable[[Request], Awaitable[Response]]
Operation = Callable[[PlatformSandbox, Request], Awaitable[Any]]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _id(request: Request) -> int:
    text = str(request.path_params["id"])
    if not (text.isascii() and text.isdigit()):
        raise ApiError(404, f"no such ID {text[:20]!r}")
    return int(text)


async def _form(request: Request) -> list[tuple[str, str]]:
    body = await request.body()
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                         errors="strict")
    except UnicodeDecodeError:
        raise bad("body: not valid UTF-8") from None


class LostAnswer(JSONResponse):
    """Starts the 200 answer, sends half of it, then stops: the server closes the connection
    because the answer is incomplete, so the client sees a transport error after the
    create was applied (fault ``lost_answer_rate``)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.headers["content-length"] = str(len(self.body) + 64)
        await send({"type": "http.response.start", "status": 200,
                    "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[:len(self.body) // 2],
                    "more_body": True})
        # Returning without the last body message is what drops the connection.


def _platform(sandbox: PlatformSandbox, operation: Operation,
              creates: str | None = None) -> Handler:
    """Wrap one platform operation: auth (401), injected faults, ApiError -> JSON.
    ``creates`` names what a create POST makes (``campaign``, ``list``): its answer may be
    lost after it was applied."""

    async def handle(request: Request) -> Response:
        if not sandbox.authorized(request.headers.get("Authorization")):
            return _error(401, "missing or wrong API key (Authorization: Bearer <key>)")
        fault = sandbox.injected_fault()
        if fault is not None:
            status, retry_after = fault
            if status == 429:
                return _error(429, "too many requests",
                              {"Retry-After": f"{retry_after:g}"})
            return _error(status, "injected server error")
        try:
            answer = await operation(sandbox, request)
        except ApiError as error:
            return _error(error.status, error.message)
        if creates is not None and sandbox.loses_answer(creates):
            return LostAnswer(answer)
        return JSONResponse(answer)

    return handle


async def _campaign_item(sandbox: PlatformSandbox, request: Request) -> Any:
    campaign_id = _id(request)
    if request.method == "GET":
        return sandbox.get_campaign(campaign_id)
    if request.method == "PUT":
        return sandbox.update_campaign(campaign_id, await _form(request))
    return sandbox.delete_campaign(campaign_id)


async def _list_item(sandbox: PlatformSandbox, request: Request) -> Any:
    if request.method == "GET":
        return sandbox.get_list(_id(request))
    return sandbox.delete_list(_id(request))


async def _contacts(sandbox: PlatformSandbox, request: Request) -> Any:
    list_id = _id(request)
    try:
        # orjson: a 10,000-contact import is 0.7 MB, and the standard library's decoder was
        # a quarter of the sandbox's time in an upload. Strict JSON (no NaN) either way.
        payload = orjson.loads(await request.body())
    except ValueError:
        raise bad("body: not valid JSON") from None
    return sandbox.add_contacts(list_id, payload)


async def _create_campaign(sandbox: PlatformSandbox, request: Request) -> Any:
    return sandbox.create_campaign(await _form(request))


async def _payload(sandbox: PlatformSandbox, request: Request) -> Any:
    return sandbox.attach_payload(_id(request), await _form(request))


async def _create_list(sandbox: PlatformSandbox, request: Request) -> Any:
    return sandbox.create_list(await _form(request))


async def _templates(sandbox: PlatformSandbox, request: Request) -> Any:
    return sandbox.list_templates(*page(dict(request.query_params)))


async def _template(sandbox: PlatformSandbox, request: Request) -> Any:
    return sandbox.get_template(_id(request))


async def _domains(sandbox: PlatformSandbox, request: Request) -> Any:
    return sandbox.list_domains(*page(dict(request.query_params)))


def _admin_routes(sandbox: PlatformSandbox) -> list[Route]:
    """``/sandbox/``: no auth; for tests, the demo and people poking at it."""

    async def ground_truth(_: Request) -> Response:
        items = sorted(sandbox.ground_truth())
        return JSONResponse({"items": [[c, e, a, d.isoformat()] for c, e, a, d in items],
                             "total": len(items)})

    async def campaigns(_: Request) -> Response:
        items = [{**c.as_json(), "contacts_total": c.contacts_total,
                  "contacts_done": c.contacts_done} for c in sandbox.campaigns()]
        return JSONResponse({"items": items, "total": len(items), "idle": sandbox.idle()})

    async def faults(request: Request) -> Response:
        try:
            data = json.loads(await request.body() or b"null")
            chosen = None if not data else PlatformFaults.from_json(data)
        except (ValueError, TypeError) as error:
            return _error(400, f"faults: {error}")
        sandbox.set_faults(chosen)
        return JSONResponse({"faults": asdict(chosen) if chosen else None})

    async def templates(request: Request) -> Response:
        try:
            data = json.loads(await request.body())
            template_id = sandbox.add_template(str(data["name"]), Channel(data["type"]),
                                               str(data["body"]))
        except (ValueError, KeyError, TypeError) as error:
            return _error(400, f"template: needs name, type (email|sms) and body ({error})")
        return JSONResponse({"id": template_id}, status_code=201)

    async def lists(_: Request) -> Response:
        items = [{"id": i, "name": n} for i, n in sorted(sandbox.lists().items())]
        return JSONResponse({"items": items, "total": len(items)})

    async def index(_: Request) -> Response:
        return JSONResponse({"sandbox": "platform", "admin": {
            "POST /sandbox/templates": "add a template: {name, type: email|sms, body}",
            "GET /sandbox/campaigns": "every campaign with its state and contacts",
            "GET /sandbox/lists": "every contact list (ID and name)",
            "GET /sandbox/ground-truth": "every event the platform emitted",
            "PUT /sandbox/faults": "fault plan for the API and the callbacks",
        }})

    return [Route("/sandbox", index, methods=["GET"]),
            Route("/sandbox/", index, methods=["GET"]),
            Route("/sandbox/ground-truth", ground_truth, methods=["GET"]),
            Route("/sandbox/campaigns", campaigns, methods=["GET"]),
            Route("/sandbox/lists", lists, methods=["GET"]),
            Route("/sandbox/faults", faults, methods=["PUT"]),
            Route("/sandbox/templates", templates, methods=["POST"])]


def create_app(sandbox: PlatformSandbox) -> Starlette:
    """The sandbox as an ASGI app; its lifespan runs the sender."""

    def route(path: str, operation: Operation, *methods: str, creates: str | None = None
              ) -> Route:
        return Route(path, _platform(sandbox, operation, creates), methods=list(methods))

    routes = [
        route("/campaign", _create_campaign, "POST", creates="campaign"),
        route("/campaign/{id}", _campaign_item, "GET", "PUT", "DELETE"),
        route("/campaign/{id}/payload", _payload, "POST"),
        route("/list", _create_list, "POST", creates="list"),
        route("/list/{id}", _list_item, "GET", "DELETE"),
        route("/list/{id}/contacts", _contacts, "POST"),
        route("/template", _templates, "GET"),
        route("/template/{id}", _template, "GET"),
        route("/domain", _domains, "GET"),
        *_admin_routes(sandbox),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(sandbox.run(), name="platform-sandbox-sender")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def http_error(_: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return _error(error.status_code, str(error.detail))

    return Starlette(routes=routes, lifespan=lifespan,
                     exception_handlers={HTTPException: http_error})
