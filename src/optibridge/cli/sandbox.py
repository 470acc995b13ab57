"""``optibridge sandbox``: run the Optimove and platform emulators for a rehearsal."""

from __future__ import annotations

import time
from enum import StrEnum

import typer

from optibridge.cli.common import console
from optibridge.serving import RunningServer, start_server


class Which(StrEnum):
    BOTH = "both"
    OPTIMOVE = "optimove"
    PLATFORM = "platform"


def sandbox(which: Which = typer.Argument(Which.BOTH, help="optimove, platform, or both"),
            host: str = typer.Option("127.0.0.1", help="Address to listen on."),
            optimove_port: int = typer.Option(8701, help="Port of the Optimove sandbox."),
            platform_port: int = typer.Option(8702, help="Port of the platform sandbox."),
            tenant: str = typer.Option("demo", help="Tenant name of the Optimove key."),
            optimove_key: str = typer.Option("sandbox-optimove-key",
                                             envvar="OPTIBRIDGE_SANDBOX_OPTIMOVE_KEY"),
            platform_key: str = typer.Option("sandbox-platform-key",
                                             envvar="OPTIBRIDGE_SANDBOX_PLATFORM_KEY"),
            callback_window: float = typer.Option(
                300.0, help="Seconds the platform aggregates events before a callback."),
            seed: int = typer.Option(0, help="Seed of the random event model.")) -> None:
    """Serve the sandboxes until Ctrl-C; prints their URLs and API keys."""
    running: list[RunningServer] = []
    if which in (Which.BOTH, Which.OPTIMOVE):
        from optibridge.sandbox.optimove import OptimoveSandbox
        from optibridge.sandbox.optimove import create_app as optimove_app

        server = start_server(optimove_app(OptimoveSandbox({optimove_key: tenant}, seed=seed)),
                              host=host, port=optimove_port)
        running.append(server)
        console.print(f"Optimove sandbox  {server.url}   X-API-KEY: {optimove_key} "
                      f"(tenant {tenant})   admin: {server.url}/sandbox/")
    if which in (Which.BOTH, Which.PLATFORM):
        from optibridge.sandbox.platform import PlatformSandbox
        from optibridge.sandbox.platform import create_app as platform_app

        server = start_server(platform_app(PlatformSandbox(
            [platform_key], seed=seed, callback_window=callback_window)),
            host=host, port=platform_port)
        running.append(server)
        console.print(f"platform sandbox  {server.url}   Authorization: Bearer {platform_key}"
                      f"   admin: {server.url}/sandbox/")
    console.print("Ctrl-C stops them.")
    try:
        while all(s.thread.is_alive() for s in running):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for server in running:
            server.stop()


def register(app: typer.Typer) -> None:
    app.command()(sandbox)
