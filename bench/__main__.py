"""``python -m bench NAME... [--quick] [--runs N] [--no-append] [--out FILE] [--audience files]
[--database sqlite|postgresql|both] [--replicas N] [--customers N]``

NAME is one or more of the benchmarks, or ``all``. Each run prints a table; the median of the
runs is appended to BENCHMARKS.md with date, machine, commit and load average (``--quick``
runs are not recorded unless ``--out`` names a file). ``--database postgresql`` runs the
service on a database of its own, created on the server $OPTIBRIDGE_BENCH_POSTGRES_URL names
and dropped afterwards (``both``: the two alternate run by run); ``--replicas N`` (ingest
benchmarks) runs N service processes on one database, the load spread over their ports;
``--customers N`` sets the campaign benchmark's audience (default 1,000,000; --quick 20,000).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from bench.common import (
    BENCHMARKS_MD,
    POSTGRES_ENV,
    TARGET,
    Result,
    append,
    console,
    median_of,
    postgres_server,
    table,
)

NAMES = ("pull", "execute", "ingest-batched", "ingest-single", "report", "report-lost",
         "triggered", "campaign", "status")
REPLICATED = ("ingest-batched", "ingest-single")  # what --replicas applies to


def _runner(name: str, audience: str = "rest") -> Callable[[bool], dict[str, Result]]:
    """The function that runs ``name``; some runs measure two benchmarks at once."""
    if name == "pull" and audience == "files":
        from bench import pull_files
        return pull_files.run
    if name in ("pull", "execute"):
        from bench import pull
        if name == "execute":  # its own run: the pull not held to Optimove's limit
            return lambda quick: {name: pull.run(quick, limited=False)[name]}
        return lambda quick: {name: pull.run(quick)[name]}
    if name in ("ingest-batched", "ingest-single"):
        from bench import ingest
        return lambda quick: {name: ingest.run(name, quick)}
    if name in ("report", "report-lost"):
        from bench import report
        return lambda quick: {name: report.run(quick, lost=name == "report-lost")}
    if name == "triggered":
        from bench import triggered
        return lambda quick: {name: triggered.run(quick)}
    if name == "campaign":
        from bench import campaign
        return lambda quick: {name: campaign.run(quick)}
    if name == "status":
        from bench import status
        return lambda quick: {name: status.run(quick)}
    raise SystemExit(f"unknown benchmark {name!r}: one of {', '.join(NAMES)} or all")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in databases:
        postgres_server()  # a clear message before anything starts
    names = list(NAMES) if "all" in args.name else list(dict.fromkeys(args.name))
    if args.replicas < 1 or (args.replicas > 1 and not set(names) & set(REPLICATED)):
        raise SystemExit(f"--replicas N (N >= 1) applies to {' and '.join(REPLICATED)} only")
    if args.customers is not None and (args.customers < 1 or "campaign" not in names):
        raise SystemExit("--customers N (N >= 1) applies to campaign only")
    TARGET.customers = args.customers
    runs = args.runs or (1 if args.quick else 3)
    wanted = names
    if args.audience == "files":
        wanted = ["pull-files" if name == "pull" else name for name in wanted]
    record = not args.no_append and (args.out is not None or not args.quick)
    out = args.out or BENCHMARKS_MD
    done: dict[tuple[str, str], list[Result]] = {}
    for name in wanted:
        TARGET.replicas = args.replicas if name in REPLICATED else 1
        # Databases alternate run by run, so both see the same hour of a shared machine.
        for run in range(runs):
            for database in databases:
                TARGET.database = database
                console.print(f"[bold]{name}[/] run {run + 1}/{runs}{TARGET.label()}"
                              f"{' (quick)' if args.quick else ''}")
                runner = _runner("pull", "files") if name == "pull-files" else _runner(name)
                for measured, result in runner(args.quick).items():
                    done.setdefault((measured, database), []).append(result)
                    console.print(table(result))
    failed = False
    for name in dict.fromkeys(measured for measured, _ in done):
        for database in databases:
            results = done.get((name, database))
            if not results:
                continue
            merged = median_of(results)
            if runs > 1:
                console.print(table(merged))
            if record:
                append(merged, out)
            failed = failed or not merged.figures
    if record:
        console.print(f"figures appended to {out}")
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="+", choices=[*NAMES, "all"],
                        help="one or more benchmarks, or all")
    parser.add_argument("--quick", action="store_true", help="seconds, small sizes (CI)")
    parser.add_argument("--runs", type=int, default=None,
                        help="runs to take the median of (default 3, --quick 1)")
    parser.add_argument("--no-append", action="store_true", help="do not record the figures")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"the file to append to (default {BENCHMARKS_MD.name})")
    parser.add_argument("--audience", choices=["rest", "files"], default="rest",
                        help="pull: files reads an EventTypeID 14 audience from Avro files "
                             "(and measures the REST pull in the same run as its baseline)")
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"],
                        default="sqlite",
                        help="the service's database; postgresql: a fresh database on the "
                             f"server ${POSTGRES_ENV} names; both: the two alternate run "
                             "by run (a baseline in the same hour)")
    parser.add_argument("--replicas", type=int, default=1,
                        help=f"service processes on one database ({', '.join(REPLICATED)})")
    parser.add_argument("--customers", type=int, default=None,
                        help="campaign: the audience's size (default 1,000,000)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
