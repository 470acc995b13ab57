"""CPU-heavy pure work (decoding audience pages) in processes beside the event loop.

The service's one event loop answers callbacks, stores audience pages and uploads chunks.
Decoding a page of 10,000 audience rows (the JSON, the rows, the addresses, the fields) is
40 ms of its time on a quiet machine and twice that on a busy one, five times a second
during a pull. In a process of its own that work goes to another core, and the GIL does
not hold the loop up while it runs.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import select
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import ParamSpec, TypeVar

import structlog

_P = ParamSpec("_P")
_T = TypeVar("_T")

# What a decoding process imports once, before it is forked for each new process.
_PRELOAD = ["optibridge.offload", "optibridge.pipeline.entries"]

log = structlog.get_logger("optibridge.offload")


class Offload:
    """Runs picklable functions in ``processes`` processes, or on the caller's loop (0)."""

    def __init__(self, processes: int = 0) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    async def run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        if self.processes == 0:
            return fn(*args, **kwargs)
        for _ in range(2):
            pool = self._current()
            try:
                return await asyncio.wrap_future(pool.submit(fn, *args, **kwargs))
            except BrokenProcessPool:
                # A process died under us (killed, out of memory): not the work's fault.
                log.warning("offload.process_lost", work=getattr(fn, "__name__", str(fn)))
                self._replace(pool)
        # Lost twice with this work in hand: it runs here, where its own error shows.
        return fn(*args, **kwargs)

    def start(self) -> None:
        """Start the processes now rather than on the first work (a pull's first page)."""
        if self.processes:
            self._current().submit(int)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _current(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.processes, mp_context=_context(),
                                             initializer=watch_service, initargs=(os.getpid(),))
        return self._pool

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        if self._pool is broken:  # not replaced yet by another caller that saw it break
            self._pool = None
            broken.shutdown(wait=False, cancel_futures=True)


INLINE = Offload(0)


def _context() -> multiprocessing.context.BaseContext:
    # Not fork: the service has threads (the database driver's), and a forked copy of a
    # thread's lock can be held forever. The fork server starts clean and preloads.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


def watch_service(service: int) -> None:
    """In a decoding process: exit as soon as the service process is gone.

    A service killed with -9 never shuts its pool down, and the process would wait for work
    forever: it holds both ends of its own work queue, so it never sees the queue close."""
    def watch() -> None:
        try:
            handle = os.pidfd_open(service)
        except ProcessLookupError:
            os._exit(0)
        except (AttributeError, OSError):  # no pidfd here (not Linux, or an old kernel)
            while _alive(service):
                time.sleep(1.0)
        else:
            select.select([handle], [], [])  # readable once the process has ended
        os._exit(0)

    threading.Thread(target=watch, name="watch-service", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
