"""What every benchmark shares: figures and targets, tables, the service's peak RSS from the
operating system, medians of runs, the machine and commit, and appending to BENCHMARKS.md."""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
from rich.console import Console
from rich.table import Table

from optibridge.demo import Rehearsal

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
POSTGRES_ENV = "OPTIBRIDGE_BENCH_POSTGRES_URL"
console = Console()


@dataclass
class Target:
    """What the benchmarks run against: the database kind and, for the ingest benchmarks,
    how many replicas of the service share it. ``python -m bench`` sets ``TARGET``."""

    database: str = "sqlite"  # or "postgresql" (a fresh database at $OPTIBRIDGE_BENCH_...)
    replicas: int = 1
    customers: int | None = None  # campaign: the audience's size (None: the default)

    def label(self) -> str:
        """How a result's heading names the target ("" for the default)."""
        parts = [] if self.database == "sqlite" else [self.database]
        if self.replicas > 1:
            parts.append(f"{self.replicas} replicas")
        return f" ({', '.join(parts)})" if parts else ""


TARGET = Target()


def postgres_server() -> str:
    """The PostgreSQL server the benchmarks make their databases on, or a clear exit."""
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        raise SystemExit(f"--database postgresql: set {POSTGRES_ENV} to a server the "
                         "benchmark may create and drop databases on, for example "
                         "postgresql://postgres@127.0.0.1:5432/postgres")
    return url


class PostgresDatabase:
    """A database of its own on the benchmark server, created now and dropped by ``drop``
    (as the tests' fixture does)."""

    def __init__(self, server: str) -> None:
        from sqlalchemy.engine import make_url

        admin = make_url(server).set(drivername="postgresql")
        self.admin = admin.render_as_string(hide_password=False)
        # The prefix may be set so that a caller can tell its databases from other runs'.
        prefix = os.environ.get("OPTIBRIDGE_BENCH_DATABASE_PREFIX", "optibridge_bench")
        self.name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self._admin("CREATE DATABASE \"{}\"")
        self.url = admin.set(database=self.name).render_as_string(hide_password=False)
        self._connection: Any = None

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as connection:
            connection.execute(sql.format(self.name).encode())

    def connection(self) -> Any:
        """One autocommit connection for the benchmark's own reads and writes."""
        import psycopg

        if self._connection is None:
            self._connection = psycopg.connect(self.url, autocommit=True)
        return self._connection

    def drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._admin("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)")


@dataclass(frozen=True)
class Figure:
    """One measured number; ``target`` is a bound (``>=`` or ``<=``) or None (reported only)."""

    name: str
    value: float
    unit: str = ""
    target: float | None = None
    better: str = ">="  # ">=" the value must reach the target, "<=" stay under it

    @property
    def ok(self) -> bool | None:
        if self.target is None or math.isnan(self.value):
            return None  # no bound, or not measured in this run
        return self.value >= self.target if self.better == ">=" else self.value <= self.target

    def target_text(self) -> str:
        return "—" if self.target is None else f"{self.better} {_number(self.target)}"


@dataclass
class Result:
    benchmark: str
    quick: bool
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    runs: int = 1
    target: str = field(default_factory=lambda: TARGET.label())
    loads: list[float] = field(default_factory=lambda: [os.getloadavg()[0]])

    def loads_text(self) -> str:
        return ", ".join(f"{load:.1f}" for load in self.loads)

    def add(self, name: str, value: float, unit: str = "", target: float | None = None,
            better: str = ">=") -> None:
        self.figures.append(Figure(name, float(value), unit, target, better))

    def value(self, name: str) -> float:
        return next(f.value for f in self.figures if f.name == name)


def median_of(results: Sequence[Result]) -> Result:
    """Each figure's median over the runs (figures keep the first run's order)."""
    first = results[0]
    merged = Result(first.benchmark, first.quick, runs=len(results), target=first.target,
                    loads=[load for r in results for load in r.loads])
    for figure in first.figures:
        values = [f.value for r in results for f in r.figures if f.name == figure.name]
        # A figure a run could not measure (NaN) is left out, not sorted in among numbers.
        measured = [v for v in values if not math.isnan(v)]
        median = statistics.median(measured) if measured else math.nan
        merged.figures.append(Figure(figure.name, median, figure.unit, figure.target,
                                     figure.better))
        if len(measured) < len(values):
            merged.notes.append(f"{figure.name}: measured in {len(measured)} of "
                                f"{len(values)} runs")
    for result in results:
        merged.notes.extend(n for n in result.notes if n not in merged.notes)
    return merged


def _number(value: float) -> str:
    if math.isnan(value):
        return "—"  # not measured in this run (the figure says when)
    if value == int(value) and abs(value) >= 10:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.3f}"


def _verdict(figure: Figure) -> str:
    return {None: "", True: "met", False: "MISSED"}[figure.ok]


def table(result: Result) -> Table:
    title = (f"{result.benchmark}{result.target}{' (quick)' if result.quick else ''}"
             f"{f', median of {result.runs} runs' if result.runs > 1 else ''}")
    out = Table("figure", "value", "unit", "target", "", title=title)
    for figure in result.figures:
        verdict = _verdict(figure)
        colour = "green" if verdict == "met" else "red" if verdict else ""
        out.add_row(figure.name, _number(figure.value), figure.unit, figure.target_text(),
                    f"[{colour}]{verdict}[/]" if colour else "")
    return out


def markdown(result: Result) -> str:
    lines = ["| figure | value | unit | target | |", "|---|---:|---|---|---|"]
    for figure in result.figures:
        lines.append(f"| {figure.name} | {_number(figure.value)} | {figure.unit} | "
                     f"{figure.target_text()} | {_verdict(figure)} |")
    return "\n".join(lines)


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    return (f"{os.cpu_count()} cores, {memory:.0f} GiB, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


def commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.strip()
        # BENCHMARKS.md itself does not count: earlier benchmarks of a run append to it.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", f":!{BENCHMARKS_MD.name}"],
                               cwd=ROOT, check=True, capture_output=True,
                               text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}{' (+ uncommitted changes)' if dirty else ''}"


def append(result: Result, path: Path = BENCHMARKS_MD) -> None:
    """Append the figures with date, machine and commit under the results heading."""
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    runs = f", median of {result.runs} runs" if result.runs > 1 else ""
    text = (f"\n### {result.benchmark}{' --quick' if result.quick else ''}{result.target} "
            f"— {when}\n\n"
            f"Machine: {machine()}. Commit: {commit()}{runs}. Load average (1 min) at the "
            f"start of each run: {result.loads_text()}.\n\n{markdown(result)}\n")
    for note in result.notes:
        text += f"\n- {note}"
    if result.notes:
        text += "\n"
    if not path.exists():
        path.write_text("# Benchmarks\n\n## Results, newest last\n")
    with path.open("a", encoding="utf-8") as out:
        out.write(text)


# ---- the service process ----------------------------------------------------------------

def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size as the kernel counts it (VmHWM), in MB."""
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float(psutil.Process(pid).memory_info().rss) / 2**20  # not Linux: current RSS


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


class ServiceProbe:
    """CPU time and peak RSS of the service process (or of each replica's) over a measured
    stretch: cores are the sum over the processes, peak RSS the largest one's."""

    def __init__(self, *pids: int) -> None:
        self.pids = pids
        self.started = time.monotonic()
        self.cpu_start = sum(cpu_seconds(pid) for pid in pids)

    def cores(self) -> float:
        """Cores the service used on average since the probe started."""
        used = sum(cpu_seconds(pid) for pid in self.pids) - self.cpu_start
        return used / max(1e-9, time.monotonic() - self.started)

    def peak_mb(self) -> float:
        return max(peak_rss_mb(pid) for pid in self.pids)


# ---- worlds: sandboxes here, the service in its own process ---------------------------------

@dataclass
class World(Rehearsal):
    """A Rehearsal whose service always runs in its own process, with config overrides."""

    overrides: dict[str, Any] = field(default_factory=dict)
    tenant_overrides: dict[str, Any] = field(default_factory=dict)
    channels: dict[str, Any] = field(default_factory=dict)
    postgres: PostgresDatabase | None = None

    def config_data(self) -> dict[str, Any]:
        data = super().config_data()
        for section, values in self.overrides.items():
            data.setdefault(section, {}).update(values)
        for tenant in data["tenants"].values():
            tenant.update(self.tenant_overrides)
            tenant["channels"].update(self.channels)
        return data

    def start(self) -> subprocess.Popen[bytes]:
        """Sandboxes (here) and then the service (its own process)."""
        self.start_sandboxes()
        return self.start_service_process()

    def start_sandboxes(self) -> None:
        """The sandboxes, and on PostgreSQL a fresh database of the run's own."""
        if TARGET.database == "postgresql" and self.postgres is None:
            self.postgres = PostgresDatabase(postgres_server())
            self.database_url = self.postgres.url
        super().start_sandboxes()

    def start_service_process(self) -> subprocess.Popen[bytes]:
        self.config = self._config()
        return self.start_process(self.service_port)

    def start_replicas(self, count: int) -> list[subprocess.Popen[bytes]]:
        """The service and ``count - 1`` more replicas on the same database, each on a
        port of its own (``ports``)."""
        first = self.start_service_process()
        return [first, *(self.start_process(self.new_port()) for _ in range(count - 1))]

    @property
    def ports(self) -> list[int]:
        return list(self.processes)

    @property
    def database_path(self) -> Path:
        return self.workdir / "optibridge.db"

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """A read of the service's database from here (SQLite's WAL: never blocks it);
        ``?`` placeholders on either database."""
        if self.postgres is not None:
            cursor = self.postgres.connection().execute(sql.replace("?", "%s").encode(), args)
            return list(cursor.fetchall()) if cursor.description else []
        with sqlite3.connect(f"file:{self.database_path}?mode=ro", uri=True,
                             timeout=30) as db:
            return list(db.execute(sql, args).fetchall())

    def scalar(self, sql: str, *args: Any) -> Any:
        rows = self.query(sql, *args)
        return rows[0][0] if rows else None

    def insert_rows(self, table: str, columns: Sequence[str],
                    rows: Iterable[Sequence[Any]]) -> None:
        """Rows written straight into the service's database (a backlog to start from):
        COPY on PostgreSQL, one executemany on SQLite."""
        names = ", ".join(columns)
        if self.postgres is not None:
            with self.postgres.connection().cursor() as cursor, cursor.copy(
                    f"COPY {table} ({names}) FROM STDIN".encode()) as copy:
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join("?" for _ in columns)
        with sqlite3.connect(self.database_path) as db:
            db.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})",
                           rows)

    def close(self) -> None:
        """Stop everything; the working folder (SQLite database, config, service logs) is
        removed, unless the run is failing: called from a ``finally`` while an exception
        propagates, it is kept and named."""
        failing = sys.exc_info()[0] is not None
        try:
            super().close()
        finally:
            if self.postgres is not None:
                self.postgres.drop()
                self.postgres = None
            if failing:
                console.print(f"kept the run's working folder {self.workdir}",
                              highlight=False)
            else:  # a 10,000,000-customer run leaves gigabytes
                shutil.rmtree(self.workdir, ignore_errors=True)


def wait_for(what: str, check: Callable[[], bool], timeout: float, poll: float = 0.05,
             alive: subprocess.Popen[bytes] | None = None) -> float:
    """Poll ``check`` until true; the monotonic time it first was."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return time.monotonic()
        if alive is not None and alive.poll() is not None:
            raise RuntimeError(f"the service exited while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached in {timeout:.0f} s")
        time.sleep(poll)


def percentile(values: Sequence[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def rate_share(done: float, seconds: float, limit: int, window: float) -> float:
    """The achieved rate of ``done`` calls in ``seconds`` as a share of the sustained limit
    (``limit`` per ``window``): 100 calls in 21 s under 50 per 10 s is 0.952. A burst at the
    start can take a short run above 1."""
    return (done / max(seconds, 1e-9)) / (limit / window)
