"""A tiny callback receiver for the platform tests (a module, not conftest: importable)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from optibridge.platform.api import CallbackBatch
from optibridge.platform.callbacks import CallbackError, parse_callback


@dataclass
class Receiver:
    """A tiny callback endpoint: parses with parse_callback, keeps every batch."""

    url: str = ""
    batches: list[CallbackBatch] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fail_first: int = 0  # answer 503 to this many callbacks first
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            body = await request.body()
            with self.lock:
                if self.fail_first > 0:
                    self.fail_first -= 1
                    return PlainTextResponse("try later", status_code=503)
            try:
                batch = parse_callback(body, request.scope["query_string"].decode("latin-1"))
            except CallbackError as error:
                with self.lock:
                    self.errors.append(str(error))
                return PlainTextResponse(str(error), status_code=400)
            with self.lock:
                self.batches.append(batch)
            return PlainTextResponse("ok")

        return Starlette(routes=[Route("/callback", receive, methods=["POST"])])
