"""``optibridge serve``: the HTTP service and its background worker."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from optibridge.cli.common import ConfigOption, config_from, console

if TYPE_CHECKING:
    from optibridge.config import Config


def local_url(listen: str) -> str:
    """The service's address as seen from this machine (0.0.0.0 listens on loopback too)."""
    host, port = listen.rsplit(":", 1)
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 (naming the wildcard, not binding it)
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def reach_lines(config: Config, here: str) -> list[str]:
    """Where the service listens and which URLs each side must reach (tokens elided: they
    are secrets; `optibridge listeners register` puts the real ones in Optimove)."""
    public = config.server.public_url
    admin = ("admin token needed" if config.server.admin_token is not None
             else "answers only this machine: no admin token")
    lines = [f"status page  {here}/ui  ({admin})",
             f"metrics      {here}/metrics   probes {here}/healthz, {here}/readyz",
             f"Optimove must reach {public} (registered by `optibridge listeners register`):"]
    for name, tenant in config.tenants.items():
        lines.append(f"  {public}/listener/{name}/<token>   EventTypeIDs 13, 1, 4")
        if any(channel.triggered for channel in tenant.channels.values()):
            lines.append(f"  {public}/triggered/{name}/<token>  EventTypeID 11")
    lines.append(f"the platform must reach {public} (one signed URL per send):")
    lines += [f"  {public}/callbacks/{name}?send=…&sig=…" for name in config.tenants]
    return lines


def _database(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


FdOption = typer.Option(
    None, "--fd", min=0,
    help="Listen on this inherited socket, already bound (socket activation, or a "
         "supervisor that holds the port), instead of binding server.listen.")


def inherited_socket(fd: int) -> socket.socket:
    """The bound socket a parent handed down as descriptor ``fd``."""
    try:
        sock = socket.socket(fileno=fd)  # family and type read from the descriptor
    except OSError as error:
        raise typer.BadParameter(f"descriptor {fd} is not a socket this process holds "
                                 f"({error.strerror})", param_hint="--fd") from None
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
        sock.detach()  # not ours to close
        raise typer.BadParameter(f"descriptor {fd} is not a TCP socket", param_hint="--fd")
    return sock


def serve(config: Path | None = ConfigOption, fd: int | None = FdOption) -> None:
    """Serve the listener, the callbacks, health and metrics, and run the pipeline."""
    import uvicorn

    from optibridge.allocator import map_large_buffers
    from optibridge.logs import configure_logging
    from optibridge.service.app import create_app

    loaded = config_from(config)
    sockets = None if fd is None else [inherited_socket(fd)]
    host, port = (loaded.server.host, loaded.server.port) if sockets is None \
        else sockets[0].getsockname()[:2]
    configure_logging(loaded.server.log_format)
    map_large_buffers()  # before the pages, chunks and callbacks come
    console.print(f"[bold]optibridge serve[/]: migrating {_database(loaded.server.database_url)}"
                  f", then serving {len(loaded.tenants)} tenant"
                  f"{'' if len(loaded.tenants) == 1 else 's'}", highlight=False, soft_wrap=True)

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:  # uvicorn binds after the app's start-up: this is when it listens
                console.print(f"listening on {host}:{port}", highlight=False)
                for line in reach_lines(loaded, local_url(f"{host}:{port}")):
                    console.print(line, highlight=False, markup=False, soft_wrap=True)

    server = Server(uvicorn.Config(create_app(loaded), host=host, port=port,
                                   log_level="warning",
                                   access_log=False,
                                   # A request still open 10 s after SIGTERM is cut off, so
                                   # a stuck one cannot hold the process past a supervisor's
                                   # grace period (nothing is lost: every write is durable
                                   # before its answer, and a cut-off caller retries).
                                   timeout_graceful_shutdown=10))
    server.run(sockets=sockets)


def register(app: typer.Typer) -> None:
    app.command()(serve)
