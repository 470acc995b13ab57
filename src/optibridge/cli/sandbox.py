"""``optibridge sandbox``: run the Optimove and platform emulators for a rehearsal."""

from __future__ import annotations

import contextlib
import signal
import tempfile
import threading
from enum import StrEnum
from types import FrameType
from typing import TYPE_CHECKING

import typer

from optibridge.cli.common import console

if TYPE_CHECKING:
    from optibridge.serving import RunningServer


class Which(StrEnum):
    BOTH = "both"
    OPTIMOVE = "optimove"
    PLATFORM = "platform"


def sandbox(which: Which = typer.Argument(Which.BOTH, metavar="WHICH",
                                           help="optimove, platform, or both (default)."),
            host: str = typer.Option("127.0.0.1", help="Address to listen on."),
            optimove_port: int = typer.Option(8701, help="Port of the Optimove sandbox."),
            platform_port: int = typer.Option(8702, help="Port of the platform sandbox."),
            gcs_port: int = typer.Option(
                8703, help="Port of the GCS emulator serving EventTypeID 14 files."),
            tenant: str = typer.Option("demo", help="Tenant name of the Optimove key."),
            optimove_key: str = typer.Option("sandbox-optimove-key",
                                             envvar="OPTIBRIDGE_SANDBOX_OPTIMOVE_KEY",
                                             help="The X-API-KEY the Optimove sandbox accepts."),
            platform_key: str = typer.Option("sandbox-platform-key",
                                             envvar="OPTIBRIDGE_SANDBOX_PLATFORM_KEY",
                                             help="The Bearer key the platform sandbox accepts."),
            callback_window: float = typer.Option(
                300.0, help="Seconds the platform aggregates events before a callback."),
            seed: int = typer.Option(0, help="Seed of the random event model."),
            lost_response_rate: float = typer.Option(
                0.0, help="Optimove: share of calls applied whose answer is then lost."),
            readback_delay: float = typer.Option(
                0.0, help="Optimove: seconds before an applied call shows in "
                          "GetCustomerChannelInteractions."),
            readback_rows: str = typer.Option(
                "per_call", help="Optimove: a read-back row per applied call (per_call) or "
                                 "per distinct key (distinct)."),
            readback_date: str = typer.Option(
                "interaction", help="Optimove: StartDate..EndDate filters on the "
                                    "interaction date (interaction) or the send date (send)."),
            auth_failure_status: int | None = typer.Option(
                None, help="Optimove: refuse every call with 401 or 403 (a revoked key)..."),
            auth_failure_seconds: float | None = typer.Option(
                None, help="... for this many seconds after start (default: until stopped)."),
            metric_tenant_id: int = typer.Option(
                1000, help="Optimove: the tenant ID saveEvent serves (metric-<ID> in the path)."),
            metric_token: str = typer.Option(
                "sandbox-metric-token", help="Optimove: the token saveEvent bodies are "
                "signed with."),
            ) -> None:
    """Serve the sandboxes until Ctrl-C; prints their URLs and API keys."""
    from optibridge.serving import start_server

    running: list[RunningServer] = []
    folders = contextlib.ExitStack()  # removed once the servers have stopped
    save_event = ""  # printed after the others (the first lines name the admin URLs)
    if which in (Which.BOTH, Which.OPTIMOVE):
        from optibridge.sandbox.optimove import FaultPlan, MetricTenant, OptimoveSandbox
        from optibridge.sandbox.optimove import create_app as optimove_app

        try:
            plan = FaultPlan.from_json({
                "lost_response_rate": lost_response_rate,
                "readback_delay_seconds": readback_delay, "readback_rows": readback_rows,
                "readback_date": readback_date, "auth_failure_status": auth_failure_status,
                "auth_failure_seconds": auth_failure_seconds})
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None
        server = start_server(optimove_app(OptimoveSandbox(
            {optimove_key: tenant}, seed=seed, faults=plan,
            metric_tenants=[MetricTenant(tenant, metric_tenant_id, metric_token)])),
            host=host, port=optimove_port)
        running.append(server)
        console.print(f"Optimove sandbox  {server.url}   X-API-KEY: {optimove_key} "
                      f"(tenant {tenant})   admin: {server.url}/sandbox/", soft_wrap=True)
        save_event = (f"saveEvent         {server.url}/metric-{{tenant_id}}/api/saveEvent   "
                      f"tenant_id {metric_tenant_id}, token {metric_token}")
    if which in (Which.BOTH, Which.PLATFORM):
        from optibridge.sandbox.platform import PlatformSandbox
        from optibridge.sandbox.platform import create_app as platform_app

        server = start_server(platform_app(PlatformSandbox(
            [platform_key], seed=seed, callback_window=callback_window)),
            host=host, port=platform_port)
        running.append(server)
        console.print(f"platform sandbox  {server.url}   Authorization: Bearer {platform_key}"
                      f"   admin: {server.url}/sandbox/", soft_wrap=True)
    if which in (Which.BOTH, Which.OPTIMOVE):
        root = folders.enter_context(tempfile.TemporaryDirectory(prefix="optibridge-gcs-"))
        running.append(_files_server(host, gcs_port, root))
        console.print(save_event, soft_wrap=True, highlight=False, markup=False)
    console.print("Ctrl-C stops them.")
    stopped = _stop_on_terminate()
    try:
        while all(s.thread.is_alive() for s in running) and not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for server in running:
            server.stop()
        folders.close()


def _stop_on_terminate() -> threading.Event:
    """Set when the process is asked to stop (SIGTERM, as from a supervisor or ``kill``),
    so that the servers stop and the files folder is removed as on Ctrl-C."""
    stopped = threading.Event()

    def stop(_signal: int, _frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    return stopped


def _files_server(host: str, port: int, root: str) -> RunningServer:
    """EventTypeID 14's side: a GCS emulator with files under ``root``."""
    from pathlib import Path

    from optibridge.sandbox.gcs import GcsEmulator
    from optibridge.sandbox.optimove.files import EngagementPublisher, create_engagement_app
    from optibridge.serving import start_server

    server = start_server(create_engagement_app(EngagementPublisher(GcsEmulator(Path(root)))),
                          host=host, port=port)
    console.print(f"GCS emulator      {server.url}   files of EventTypeID 14 (set "
                  f"files.endpoint and files.anonymous = true)   admin: "
                  f"{server.url}/sandbox/engagements", soft_wrap=True)
    return server


def register(app: typer.Typer) -> None:
    app.command()(sandbox)
