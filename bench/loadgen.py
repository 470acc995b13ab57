"""A lean HTTP/1.1 load generator on raw keep-alive sockets, run in its own process.

Requests are encoded up front, so the generator spends its time on the wire, not on building
requests: one process drives several thousand requests a second on one core.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class LoadResult:
    sent: int
    ok: int  # 2xx answers
    failed: int  # other answers and broken connections
    units: int  # sum of the units (e.g. addresses) of the 2xx answers
    seconds: float  # from the first request to the last answer
    latencies: array[float]  # seconds, one per answered request
    statuses: dict[int, int]


def post(path: str, body: bytes, host: str, port: int,
         content_type: str = "application/x-www-form-urlencoded") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    request: bytes) -> int | None:
    """Send one request and read its answer's status; None when the connection broke."""
    writer.write(request)
    try:
        return await _answer(reader)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


async def _answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


class _Tally:
    def __init__(self) -> None:
        self.sent = self.ok = self.failed = self.units = 0
        self.latencies: array[float] = array("d")
        self.statuses: dict[int, int] = {}

    def answered(self, status: int, latency: float, units: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.append(latency)
        if 200 <= status < 300:
            self.ok += 1
            self.units += units
        else:
            self.failed += 1


async def _closed(host: str, ports: Sequence[int], requests: Sequence[tuple[bytes, int]],
                  concurrency: int, duration: float, limit: int | None) -> LoadResult:
    tally = _Tally()
    start = time.monotonic()
    stop = start + duration
    counter = iter(range(limit if limit is not None else 10**12))

    async def connection(offset: int) -> None:
        port = ports[offset % len(ports)]  # connections spread evenly over the replicas
        reader, writer = await asyncio.open_connection(host, port)
        index = offset
        try:
            while time.monotonic() < stop and next(counter, None) is not None:
                request, units = requests[index % len(requests)]
                index += concurrency
                began = time.monotonic()
                tally.sent += 1
                status = await _exchange(reader, writer, request)
                if status is None:
                    tally.failed += 1
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                tally.answered(status, time.monotonic() - began, units)
        finally:
            writer.close()

    await asyncio.gather(*(connection(i) for i in range(concurrency)))
    return LoadResult(tally.sent, tally.ok, tally.failed, tally.units,
                      time.monotonic() - start, tally.latencies, tally.statuses)


async def _paced(host: str, port: int, requests: Sequence[tuple[bytes, int]], rate: float,
                 connections: int) -> LoadResult:
    """Open loop: the i-th request is due at i / rate; latency counts from when it was due
    (so a stalled server is not hidden by requests that were never sent)."""
    tally = _Tally()
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection(host, port))
    start = time.monotonic()

    async def one(index: int, request: bytes, units: int) -> None:
        due = start + index / rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        reader, writer = await pool.get()
        tally.sent += 1
        status = await _exchange(reader, writer, request)
        if status is None:
            tally.failed += 1
            pool.put_nowait(await asyncio.open_connection(host, port))
            return
        pool.put_nowait((reader, writer))
        tally.answered(status, time.monotonic() - due, units)

    await asyncio.gather(*(one(i, r, u) for i, (r, u) in enumerate(requests)))
    elapsed = time.monotonic() - start
    while not pool.empty():
        pool.get_nowait()[1].close()
    return LoadResult(tally.sent, tally.ok, tally.failed, tally.units, elapsed,
                      tally.latencies, tally.statuses)


def _run_closed(host: str, ports: Sequence[int], requests: Sequence[tuple[bytes, int]],
                concurrency: int, duration: float, limit: int | None) -> LoadResult:
    _fast_loop()
    return asyncio.run(_closed(host, ports, requests, concurrency, duration, limit))


def _run_paced(host: str, port: int, requests: Sequence[tuple[bytes, int]], rate: float,
               connections: int) -> LoadResult:
    _fast_loop()
    return asyncio.run(_paced(host, port, requests, rate, connections))


def _fast_loop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return
    uvloop.install()


def _pool() -> concurrent.futures.ProcessPoolExecutor:
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"))


def closed_loop(host: str, port: int | Sequence[int], requests: Sequence[tuple[bytes, int]],
                *, concurrency: int, duration: float, limit: int | None = None) -> LoadResult:
    """``concurrency`` connections, each sending its next request when the last is
    answered, for ``duration`` seconds (or ``limit`` requests), in a separate process.
    ``requests`` are (encoded request, units it carries), used round robin. Several
    ``port``s (replicas of the service): the connections are spread over them."""
    ports = [port] if isinstance(port, int) else list(port)
    with _pool() as pool:
        return pool.submit(_run_closed, host, ports, list(requests), concurrency, duration,
                           limit).result()


def paced(host: str, port: int, requests: Sequence[tuple[bytes, int]], *, rate: float,
          connections: int = 32) -> LoadResult:
    """Every request once, the i-th due at i / rate, in a separate process."""
    with _pool() as pool:
        return pool.submit(_run_paced, host, port, list(requests), rate, connections).result()
