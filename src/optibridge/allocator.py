"""The C allocator's setting for the service process: large buffers go back when freed.

The service's large buffers are short-lived: a page of 10,000 customers as it came from
Optimove, an upload chunk's JSON, a callback of 160,000 addresses. glibc serves a block of
128 KiB or more from a mapping of its own and unmaps it when it is freed, but each such free
raises that threshold (up to 32 MiB), so later buffers of the size come from the heap and
stay in the process once freed (measured: at the end of a 10,000,000-customer run on
PostgreSQL, one ``malloc_trim`` took the service from 315 to 251 MB). A fixed threshold
keeps them mapped and returned; the service's peak RSS under the 1,000,000-customer
campaign went from 276 to 250 MB (BENCHMARKS.md, 2026-12-07).
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt's parameter number (glibc's malloc.h) and the size from which a block is mapped.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1024 * 1024


def map_large_buffers(threshold: int = MMAP_THRESHOLD) -> bool:
    """Serve blocks of ``threshold`` bytes or more from their own mappings, returned to the
    system when freed; False where the C library is not glibc (nothing to set there) or
    where the environment sets glibc's own ``MALLOC_MMAP_THRESHOLD_`` (an operator's choice
    stands)."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
