"""The ASGI app of ``optibridge serve``: endpoints, health, and the background worker."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator

from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from optibridge.config import Config
from optibridge.service import http, ops, triggered
from optibridge.service.assembly import PlatformFactory, Service, _platform, build_service
from optibridge.service.openapi import openapi_endpoint
from optibridge.store.migrate import is_current


async def healthz(_: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    service: Service = request.app.state.service
    try:
        current = await asyncio.to_thread(is_current, service.config.server.database_url)
    except Exception as error:
        return JSONResponse({"ready": False, "database": str(error)[:200]}, status_code=503)
    if not current:
        return JSONResponse({"ready": False, "database": "migrations are not current"},
                            status_code=503)
    # Readiness means writes work: a full disk fails every callback while reads still do.
    failed = await service.store.write_probe()
    if failed is not None:
        return JSONResponse({"ready": False, "database": f"writes fail: {failed}"},
                            status_code=503)
    return JSONResponse({"ready": True})


async def http_error(_: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such path, method not allowed) as JSON like ours."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def server_error(_: Request, exc: Exception) -> Response:
    # Starlette logs the exception and re-raises it after this answer.
    return JSONResponse({"error": "internal error (logged)"}, status_code=500)


async def database_unavailable(_: Request, error: Exception) -> Response:
    """The database cannot be used right now (down, full, locked): 503, so that callers
    retry, never a 500 that reads as a bug in their request."""
    reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
    return JSONResponse({"error": f"the database is unavailable, try again: {reason}"},
                        status_code=503, headers={"Retry-After": "5"})


def create_app(config: Config, *, run_worker: bool = True,
               lease_ttl: float | None = None, takeover_wait: bool = True,
               platform_factory: PlatformFactory = _platform) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service = await build_service(config, platform_factory=platform_factory)
        app.state.service = service
        # What start-up built lives as long as the process: keep it out of the cyclic
        # collector's full passes, which otherwise rescan it while pages of 10,000 rows
        # are decoded (measured: a fifth of a page's decoding time).
        gc.freeze()
        worker_task = None
        if run_worker:
            # The decoding processes start while the service starts, not on a pull's
            # first page (a fork server's start and import take a few tenths of a second).
            await asyncio.to_thread(service.offload.start)
            worker = service.worker(lease_ttl=lease_ttl or config.timing.lease_ttl,
                                    takeover_wait=takeover_wait)
            worker_task = asyncio.create_task(worker.run(), name="worker")
        try:
            yield
        finally:
            if worker_task is not None:
                worker_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker_task
            await service.close()

    routes = [*http.routes, *triggered.routes, Route("/healthz", healthz),
              Route("/readyz", readyz), Route("/openapi.json", openapi_endpoint)]
    handlers = {HTTPException: http_error, Exception: server_error,
                OperationalError: database_unavailable, InterfaceError: database_unavailable}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    return ops.install(app, config)
