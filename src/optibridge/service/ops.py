"""Wires the operator surface into the app: ``/ui``, ``/metrics``, the callback timer, the
client call observer, and the masking of the configured secrets in the logs."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Route

from optibridge import observe
from optibridge.config import Config
from optibridge.logs import register_config_secrets
from optibridge.service import ui
from optibridge.service.auth import protected
from optibridge.service.metrics import CallbackTimer, Metrics, metrics_endpoint


def install(app: Starlette, config: Config) -> Starlette:
    """Add the status page, metrics and their hooks to ``app`` (before it starts)."""
    register_config_secrets(config)
    metrics = Metrics(config)
    app.state.metrics = metrics
    app.router.routes.extend([Route("/metrics", protected(metrics_endpoint)), *ui.routes])
    app.add_middleware(CallbackTimer, metrics=metrics)
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(started: Starlette) -> AsyncIterator[Any]:
        observe.add_observer(metrics.observe_call)
        try:
            async with inner(started) as state:
                yield state
        finally:
            observe.remove_observer(metrics.observe_call)

    app.router.lifespan_context = lifespan
    return app
