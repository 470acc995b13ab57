"""``start_server``: the in-thread servers of the sandboxes, tests and benchmarks."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from optibridge.serving import RunningServer, reserve_port, start_server


async def ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


STARTS: dict[str, Callable[[], RunningServer]] = {
    "any free port": lambda: start_server(ok),
    "a held port": lambda: start_server(ok, sock=reserve_port()),
}


@pytest.mark.parametrize("start", STARTS.values(), ids=STARTS.keys())
def test_every_connection_a_server_accepts_sends_without_waiting_for_acks(
        start: Callable[[], RunningServer]) -> None:
    """TCP_NODELAY on each accepted connection, as asyncio sets it for a TCP socket. A
    listening socket made without naming its protocol (proto 0) gave connections without
    it: an answer's body then waited for the ACK of its headers, about 40 ms a call, and a
    triggered send's six platform calls took 0.3 s instead of 0.05."""
    running = start()
    try:
        with httpx.Client() as client:  # keeps its connection open while we look
            assert client.get(running.url).text == "ok"
            accepted = [connection.transport.get_extra_info("socket")
                        for connection in running.server.server_state.connections]
            assert accepted
            assert all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in accepted)
    finally:
        running.stop()
