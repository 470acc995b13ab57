"""Every benchmark runs with --quick and produces figures (never asserts a timing)."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from bench.__main__ import NAMES

ROOT = Path(__file__).resolve().parents[2]
# The figure each benchmark exists to measure: it must be there and above zero.
HEADLINE = {
    "pull": "pages per second",
    "execute": "contacts per second (first upload to last READY)",
    "ingest-batched": "address-events stored per second",
    "ingest-single": "ratio to the bare endpoint",
    "report": "interactions reported",
    "report-lost": "interactions reported",
    "triggered": "triggers accepted per second",
    "campaign": "wall time (listener call to settled)",
    "status": "interactions in the store",
}


def _figures(text: str, name: str) -> dict[str, float]:
    section = re.search(rf"^### {re.escape(name)} --quick .*?(?=^### |\Z)", text,
                        re.MULTILINE | re.DOTALL)
    assert section, f"no figures recorded for {name}"
    figures = {}
    for line in section.group(0).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(r"-?[\d,]+(\.\d+)?", cells[1]):
            figures[cells[0]] = float(cells[1].replace(",", ""))
    return figures


@pytest.mark.slow
def test_every_benchmark_runs_quick_and_records_figures(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    temporary = tmp_path / "tmp"  # where the runs make their working folders
    temporary.mkdir()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "TMPDIR": str(temporary)}
    done = subprocess.run([sys.executable, "-m", "bench", "all", "--quick", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # A run that went well leaves nothing behind (a 10,000,000-customer one left gigabytes).
    assert not list(temporary.glob("optibridge-*"))
    text = out.read_text()
    assert "Machine:" in text and "Commit:" in text
    assert set(HEADLINE) == set(NAMES)
    for name in NAMES:
        figures = _figures(text, name)
        assert figures, f"{name}: no numbers"
        assert all(math.isfinite(v) and v >= 0 for v in figures.values()), (name, figures)
        assert figures[HEADLINE[name]] > 0, (name, figures)
        assert figures.get("service peak RSS", 1) > 0, (name, figures)


def _bench(args: list[str], env: dict[str, str], timeout: float = 300
           ) -> subprocess.CompletedProcess[str]:
    env = {**env, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_postgresql_without_a_server_says_which_variable_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPTIBRIDGE_BENCH_POSTGRES_URL"}
    done = _bench(["report", "--quick", "--database", "postgresql", "--out",
                   str(tmp_path / "out.md")], env, timeout=60)
    assert done.returncode != 0
    assert "OPTIBRIDGE_BENCH_POSTGRES_URL" in done.stderr
    assert not (tmp_path / "out.md").exists()


@pytest.mark.slow
def test_postgresql_and_replicas_run_quick_and_record_figures(tmp_path: Path) -> None:
    """The production path's benchmarks (a database of their own on the test server, two
    replicas for ingest) come out with figures; the database is dropped afterwards."""
    server = os.environ.get("OPTIBRIDGE_TEST_POSTGRES_URL")
    if not server:
        pytest.skip("OPTIBRIDGE_TEST_POSTGRES_URL is not set")
    import psycopg

    prefix = f"optibridge_bench_test_{uuid.uuid4().hex[:6]}"  # this run's, not a neighbour's

    def bench_databases() -> set[str]:
        with psycopg.connect(server, autocommit=True) as connection:
            return {row[0] for row in connection.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{prefix}_%",))}

    out = tmp_path / "BENCHMARKS.md"
    env = {**os.environ, "OPTIBRIDGE_BENCH_POSTGRES_URL": server,
           "OPTIBRIDGE_BENCH_DATABASE_PREFIX": prefix}
    done = _bench(["pull", "execute", "ingest-batched", "report", "--quick", "--database",
                   "postgresql", "--replicas", "2", "--out", str(out)], env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = out.read_text()
    for name in ("pull", "execute", "ingest-batched", "report"):
        assert re.search(rf"^### {name} --quick \(postgresql", text, re.MULTILINE), name
        figures = _figures(text, name)
        assert figures[HEADLINE[name]] > 0, (name, figures)
    assert "### ingest-batched --quick (postgresql, 2 replicas)" in text
    assert _figures(text, "ingest-batched")["service replicas"] == 2
    assert "Load average (1 min) at the start of each run:" in text
    assert bench_databases() == set()
