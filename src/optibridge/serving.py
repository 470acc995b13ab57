"""Run an ASGI app with uvicorn in a background thread on a free loopback port."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn


@dataclass
class RunningServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def reserve_port(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A socket bound to ``port`` (a free one for 0), not yet listening: give it to the
    server that is to listen there.

    A port only chosen free (``free_port``) and bound later can be taken in between by
    another process doing the same (a parallel test, a benchmark's replica), and then a
    client talks to a stranger. Bound, the port is never handed out as free; not
    listening, a connection to it is refused until our server listens."""
    # The protocol named, not left 0: asyncio sets TCP_NODELAY only on connections whose
    # socket says IPPROTO_TCP, and an accepted one inherits the listener's 0. Without it
    # an answer's body waits for the ACK of its headers (about 40 ms a call).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT, as uvicorn
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def start_server(app: Any, host: str = "127.0.0.1", port: int = 0,
                 log_level: str = "warning", sock: socket.socket | None = None,
                 **options: Any) -> RunningServer:
    """Start ``app`` in a daemon thread on ``sock``, else on ``host:port`` (any free port
    for 0), and return once it accepts connections."""
    if sock is None and port == 0:
        sock = reserve_port(host)  # chosen and bound at once: nobody can take it between
    if sock is not None:
        host, port = sock.getsockname()[:2]
    sockets = None if sock is None else [sock]
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            lifespan="on", access_log=False, **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=sockets)),
                              daemon=True, name=f"uvicorn-{port}")
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            for unused in sockets or []:
                unused.close()
            raise RuntimeError(f"server on {host}:{port} did not start")
        time.sleep(0.01)
    return RunningServer(url=f"http://{host}:{port}", server=server, thread=thread)


@contextmanager
def serving(app: Any, host: str = "127.0.0.1", port: int = 0, **options: Any
            ) -> Iterator[RunningServer]:
    running = start_server(app, host, port, **options)
    try:
        yield running
    finally:
        running.stop()


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Return once ``process`` accepts connections on 127.0.0.1:``port``; raise if it exits
    or ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process for port {port} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout:.0f} s")
