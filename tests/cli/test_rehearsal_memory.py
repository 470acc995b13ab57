"""A rehearsal hands back what it held once closed: a benchmark runs several in one
process. It keeps its sandboxes out of the cyclic collector's passes while it runs, and
frozen cycles are never collected: the second 10,000,000-customer run in one process was
killed for want of memory (24 GB), the first run's world still in it."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from optibridge.demo import Rehearsal


def _loaded(workdir: Path) -> Rehearsal:
    run = Rehearsal(customers=50, workdir=workdir)
    run.start_sandboxes()
    try:
        run.register_and_load()
    except BaseException:
        run.close()
        raise
    return run


def test_the_next_rehearsal_holds_nothing_of_a_closed_one(tmp_path: Path) -> None:
    first = _loaded(tmp_path / "first")
    assert gc.get_freeze_count() > 0  # kept out of the passes while it runs
    first.close()
    assert gc.get_freeze_count() == 0
    optimove, platform = weakref.ref(first.optimove), weakref.ref(first.platform)
    del first
    second = _loaded(tmp_path / "second")
    try:
        assert optimove() is None and platform() is None
    finally:
        second.close()
