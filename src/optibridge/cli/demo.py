"""``optibridge demo``: the whole flow on loopback, with a reconciliation table."""

from __future__ import annotations

import asyncio
import shutil
import time
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from optibridge.cli.common import console, fail

if TYPE_CHECKING:
    from optibridge.demo import ReconciliationRow, Rehearsal
    from optibridge.pipeline.progress import Progress as WorkProgress


class Counts(ProgressColumn):
    """done/total with thousands separators; "…" until the total is known."""

    def render(self, task: Task) -> Text:
        total = "…" if task.total is None else f"{task.total:,.0f}"
        return Text(f"{task.completed:,.0f}/{total}")


def demo(customers: int = typer.Option(10_000, "--customers", "-n", min=10,
                                       help="How many customers the campaigns target."),
         timeout: float = typer.Option(1800.0, help="Give up after this many seconds."),
         sample: int = typer.Option(20, help="Customers to read back from Optimove."),
         keep: bool = typer.Option(False, "--keep",
                                   help="Keep the working folder (database and logs) after "
                                        "a run that reconciles."),
         audience: str = typer.Option(
             "rest", help="rest: pull pages (EventTypeID 13); files: Avro files on a "
             "GCS emulator (EventTypeID 14)."),
         reporting: str = typer.Option(
             "interactions", help="interactions: UpdateCampaignInteractions; "
             "engagement_events: saveEvent (External Vendors Campaign Engagement Metrics).")
         ) -> None:
    """Run both sandboxes and the service here, send one campaign end to end, reconcile."""
    from optibridge.demo import Rehearsal
    from optibridge.logs import configure_logging

    if audience not in ("rest", "files"):
        raise fail(f"--audience must be rest or files, not {audience!r}", 2)
    if reporting not in ("interactions", "engagement_events"):
        raise fail(f"--reporting must be interactions or engagement_events, not "
                   f"{reporting!r}", 2)
    rehearsal = Rehearsal(customers=customers, audience_source=audience, reporting=reporting)
    log_path = rehearsal.workdir / "demo.log"
    log_file = log_path.open("a", encoding="utf-8")
    configure_logging("json", file=log_file)
    console.print(f"[bold]optibridge demo[/]: {customers:,} customers, reporting by "
                  f"{reporting}", highlight=False)
    console.print(f"working folder {rehearsal.workdir} (SQLite database, logs in demo.log); "
                  + ("kept" if keep else "removed after a run that reconciles (--keep keeps "
                                         "it)"), highlight=False, soft_wrap=True)
    try:
        rows = asyncio.run(_run(rehearsal, timeout, sample))
    except TimeoutError as error:
        raise fail(f"{error}; the working folder {rehearsal.workdir} is kept", 1) from None
    finally:
        rehearsal.close()
        log_file.close()
    console.print(_table(rows))
    if not all(row.matches for row in rows):
        raise fail("the reconciliation does not match (see the table); the working folder "
                   f"{rehearsal.workdir} is kept", 1)
    console.print("[bold green]every interaction reached Optimove exactly once[/]"
                  + (" (saveEvent)" if reporting == "engagement_events" else ""))
    if not keep:
        shutil.rmtree(rehearsal.workdir, ignore_errors=True)
        console.print(f"removed {rehearsal.workdir}", highlight=False)


async def _run(rehearsal: Rehearsal, within: float, sample: int) -> list[ReconciliationRow]:
    from optibridge.cli.serve import reach_lines

    started = time.monotonic()
    await asyncio.to_thread(rehearsal.start_sandboxes)
    console.print(f"Optimove sandbox {rehearsal.optimove_url}   platform sandbox "
                  f"{rehearsal.platform_url}", highlight=False)
    console.print(f"service listening on {rehearsal.service_url} (while the demo runs)",
                  highlight=False)
    for line in reach_lines(rehearsal.config, rehearsal.service_url):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    # Listeners first: the service's own calls must not compete for the key's rate limit.
    await asyncio.to_thread(rehearsal.register_and_load)
    await asyncio.to_thread(rehearsal.start_service)
    await asyncio.to_thread(rehearsal.fire)
    with Progress(TextColumn("{task.description:<28}"), BarColumn(),
                  Counts(), TimeElapsedColumn(),
                  console=console, transient=False) as bars:
        pulled = bars.add_task("audience pulled", total=rehearsal.customers)
        ready = bars.add_task("sends READY on the platform", total=None)
        final = bars.add_task("sends finished", total=None)
        reported = bars.add_task("interactions reported", total=None)

        def show(p: WorkProgress) -> None:
            bars.update(pulled, completed=p.customers_pulled)
            if p.sends:
                bars.update(ready, completed=p.sends_ready, total=p.sends)
                bars.update(final, completed=p.sends_final, total=p.sends)
            if p.reported + p.unreported:
                # The total grows while callbacks arrive: what is stored so far.
                bars.update(reported, completed=p.reported, total=p.reported + p.unreported)

        await rehearsal.wait_settled(within, show)
    rehearsal.stop_service()
    rows = await rehearsal.reconcile(sample)
    console.print(f"settled in {time.monotonic() - started:.1f} s")
    return rows


def _table(rows: list[ReconciliationRow]) -> Table:
    table = Table("event", "platform emitted", "stored", "Optimove holds", "dups",
                  "metric", "read back", "ok", title="Reconciliation per event")
    for row in rows:
        table.add_row(row.event, f"{row.emitted:,}", f"{row.stored:,}",
                      "—" if row.reported is None else f"{row.reported:,}",
                      "—" if row.duplicates is None else str(row.duplicates),
                      f"{row.metric:,}", row.read_back or "—",
                      "[green]yes[/]" if row.matches else "[red]NO[/]")
    return table


def register(app: typer.Typer) -> None:
    app.command()(demo)
