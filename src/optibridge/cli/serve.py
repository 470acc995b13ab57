"""``optibridge serve``: the HTTP service and its background worker."""

from __future__ import annotations

from pathlib import Path

import typer
import uvicorn

from optibridge.cli.common import ConfigOption, config_from
from optibridge.logs import configure_logging
from optibridge.service.app import create_app


def serve(config: Path | None = ConfigOption) -> None:
    """Serve the listener, the callbacks, health and metrics, and run the pipeline."""
    loaded = config_from(config)
    configure_logging(loaded.server.log_format)
    app = create_app(loaded)
    uvicorn.run(app, host=loaded.server.host, port=loaded.server.port, log_level="warning",
                access_log=False)


def register(app: typer.Typer) -> None:
    app.command()(serve)
