"""``optibridge demo``: the whole flow on loopback, with a reconciliation table."""

from __future__ import annotations

import asyncio
import time

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from optibridge.cli.common import console, fail
from optibridge.demo import ReconciliationRow, Rehearsal
from optibridge.logs import configure_logging
from optibridge.pipeline.progress import Progress as WorkProgress


def demo(customers: int = typer.Option(10_000, "--customers", "-n", min=10,
                                       help="How many customers the campaigns target."),
         timeout: float = typer.Option(1800.0, help="Give up after this many seconds."),
         sample: int = typer.Option(20, help="Customers to read back from Optimove.")) -> None:
    """Run both sandboxes and the service here, send one campaign end to end, reconcile."""
    rehearsal = Rehearsal(customers=customers)
    log_path = rehearsal.workdir / "demo.log"
    log_file = log_path.open("a", encoding="utf-8")
    configure_logging("json", file=log_file)
    console.print(f"[bold]optibridge demo[/]: {customers:,} customers; logs in {log_path}")
    try:
        rows = asyncio.run(_run(rehearsal, timeout, sample))
    except TimeoutError as error:
        raise fail(str(error), 1) from None
    finally:
        rehearsal.close()
        log_file.close()
    console.print(_table(rows))
    if not all(row.matches for row in rows):
        raise fail("the reconciliation does not match (see the table)", 1)
    console.print("[bold green]every interaction reached Optimove exactly once[/]")


async def _run(rehearsal: Rehearsal, within: float, sample: int) -> list[ReconciliationRow]:
    started = time.monotonic()
    await asyncio.to_thread(rehearsal.start_sandboxes)
    console.print(f"Optimove sandbox {rehearsal.optimove_url}, platform sandbox "
                  f"{rehearsal.platform_url}, service {rehearsal.service_url}")
    console.print(f"status page {rehearsal.service_url}/ui · metrics "
                  f"{rehearsal.service_url}/metrics (while the demo runs)")
    # Listeners first: the service's own calls must not compete for the key's rate limit.
    await asyncio.to_thread(rehearsal.register_and_load)
    await asyncio.to_thread(rehearsal.start_service)
    await asyncio.to_thread(rehearsal.fire)
    with Progress(TextColumn("{task.description:<28}"), BarColumn(),
                  TextColumn("{task.completed:,.0f}/{task.total:,.0f}"), TimeElapsedColumn(),
                  console=console, transient=False) as bars:
        pulled = bars.add_task("audience pulled", total=rehearsal.customers)
        ready = bars.add_task("sends READY on the platform", total=1)
        final = bars.add_task("sends finished", total=1)
        reported = bars.add_task("interactions reported", total=1)

        def show(p: WorkProgress) -> None:
            bars.update(pulled, completed=p.customers_pulled)
            bars.update(ready, completed=p.sends_ready, total=max(p.sends, 1))
            bars.update(final, completed=p.sends_final, total=max(p.sends, 1))
            bars.update(reported, completed=0 if p.unreported else 1, total=1)

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
