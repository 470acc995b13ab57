"""``optibridge serve`` says where it listens and which URLs each side must reach."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from optibridge.demo import Rehearsal


@pytest.fixture
def rehearsal(tmp_path: Path) -> Iterator[Rehearsal]:
    run = Rehearsal(customers=10, workdir=tmp_path)
    run.start_sandboxes()
    try:
        yield run
    finally:
        run.close()


def lines_until(process: subprocess.Popen[str], marker: str, within: float = 60) -> list[str]:
    """The output lines up to the first containing ``marker`` (fails after ``within`` s)."""
    stdout = process.stdout
    assert stdout is not None
    found: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stdout:
            found.put(line)

    threading.Thread(target=read, daemon=True).start()
    lines: list[str] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            lines.append(found.get(timeout=0.5))
        except queue.Empty:
            assert process.poll() is None, lines
            continue
        if marker in lines[-1]:
            return lines
    raise AssertionError(f"no {marker!r} within {within} s: {lines}")


def test_serve_prints_where_it_listens_and_what_each_side_must_reach(
        rehearsal: Rehearsal) -> None:
    path = rehearsal.write_config()
    env = {**os.environ, **rehearsal.environment(), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    process = subprocess.Popen([sys.executable, "-m", "optibridge", "serve", "-c", str(path)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env=env)
    try:
        out = "".join(lines_until(process, "/callbacks/"))
        here = rehearsal.service_url
        assert f"listening on 127.0.0.1:{rehearsal.service_port}" in out, out
        assert "migrating sqlite:///" in out and "1 tenant" in out, out
        assert f"{here}/listener/demo/<token>" in out, out
        assert f"{here}/callbacks/demo?send=…&sig=…" in out, out
        assert rehearsal.config.listener_token("demo") not in out  # a secret
        status = re.search(r"status page\s+(\S+/ui)", out)
        assert status and status.group(1) == f"{here}/ui", out
        assert httpx.get(status.group(1)).status_code == 200  # it answers where it says
        assert httpx.get(f"{here}/healthz").status_code == 200
    finally:
        process.terminate()
        process.wait(30)
