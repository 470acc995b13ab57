"""``POST /triggered/{tenant}/{token}``: Optimove's EventTypeID 11 call, recorded durably
before it is answered (seed 002, triggered flow 3)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from optibridge.pipeline.triggered import MAX_TRIGGER_BYTES, TriggerError, TriggerIntake
from optibridge.service.assembly import Service
from optibridge.service.http import BodyTooLarge, error, listener_tenant, read_body


def _intake(request: Request, service: Service) -> TriggerIntake:
    """One intake per app, made on first use (its writer batches concurrent triggers)."""
    intake: TriggerIntake | None = getattr(request.app.state, "trigger_intake", None)
    if intake is None or intake.store is not service.store:
        intake = TriggerIntake.for_contexts(service.store, service.contexts)
        request.app.state.trigger_intake = intake
    return intake


async def triggered(request: Request) -> Response:
    service: Service = request.app.state.service
    tenant = listener_tenant(request, service)
    if tenant is None:
        return error(404, "not found")
    try:
        body = await read_body(request, MAX_TRIGGER_BYTES)
        trigger_id = await _intake(request, service).accept(service.contexts[tenant], body)
    except BodyTooLarge:
        return error(413, f"body is over {MAX_TRIGGER_BYTES} bytes")
    except TriggerError as problem:
        return error(problem.status, str(problem))
    return JSONResponse({"recorded": trigger_id})


routes = [Route("/triggered/{tenant}/{token}", triggered, methods=["POST"])]
