"""``POST /triggered/{tenant}/{token}``: Optimove's EventTypeID 11 call, recorded durably
before it is answered (seed 002, triggered flow 3)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from optibridge.optimove.inbound import MAX_TRIGGER_BYTES
from optibridge.pipeline.triggered import TriggerIntake
from optibridge.refusals import Refused
from optibridge.service.assembly import Service
from optibridge.service.http import error, listener_tenant, read_body, refused


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
    except Refused as refusal:
        return refused(refusal)
    return JSONResponse({"recorded": trigger_id})


routes = [Route("/triggered/{tenant}/{token}", triggered, methods=["POST"])]
