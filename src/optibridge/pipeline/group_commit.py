"""Group commit: what arrives while a write is under way goes in the next write, so a burst
of small requests costs a few transactions, not one each; every caller still waits until
its own item is durable (or gets the write's error)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """``writers``: how many writes may be under way at once (1 on SQLite, whose writes take
    turns anyway; more on PostgreSQL, where a write is mostly waiting for its commit)."""

    def __init__(self, write: Callable[[list[T]], Awaitable[Sequence[R]]],
                 max_items: int = 1_000, writers: int = 1) -> None:
        self._write = write
        self._max_items = max_items
        self._writers = writers
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._flushers: list[asyncio.Task[None]] = []

    async def submit(self, item: T) -> R:
        """Write ``item`` with whatever else is waiting; its result once durable."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        # A flusher that found the queue empty is done at once (no await in between).
        self._flushers = [f for f in self._flushers if not f.done()]
        if len(self._flushers) < self._writers:
            self._flushers.append(asyncio.create_task(self._flush()))
        return await future

    async def _flush(self) -> None:
        while self._queue:
            taken, self._queue = self._queue[:self._max_items], self._queue[self._max_items:]
            try:
                results = await self._write([item for item, _ in taken])
            except Exception as error:  # each waiting request answers 5xx; senders retry
                for _, future in taken:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(taken, results, strict=True):
                if not future.done():
                    future.set_result(result)
