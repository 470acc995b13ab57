"""``optibridge work list|requeue``: background work that failed, and trying it again."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from optibridge.cli.common import ConfigOption, config_from, console, fail, run
from optibridge.cli.tenants import TenantOption, pick_tenant

if TYPE_CHECKING:
    from rich.table import Table

    from optibridge.domain import CreateRecord, WorkKind, WorkRecord

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help=(
    "Background work that failed: notifications, cancellations, pulls, sends, metrics "
    "chunks and follows that back off, and those stopped after repeated refusals; platform "
    "objects that lost answers may have left behind."))

# domain.WorkKind's values (written out: help must not import the machinery; a test
# checks that they agree).
KINDS = "notification, cancellation, pull, send, metrics, follow"


def _kind(value: str) -> WorkKind:
    from optibridge.domain import WorkKind

    try:
        return WorkKind(value)
    except ValueError:
        raise fail(f"unknown kind {value!r}: use one of {KINDS}") from None


def _utc(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def work_table(tenant: str, records: list[WorkRecord]) -> Table:
    from rich.table import Table

    table = Table("Kind", "Item", "State", "Tries", "Last failed (UTC)", "Next try (UTC)",
                  "Reason", title=f"Failed work of tenant {tenant}")
    for r in records:
        next_try = "on requeue" if r.state == "stopped" else _utc(r.next_at)
        table.add_row(str(r.kind), r.item, str(r.state), str(r.attempts), _utc(r.failed_at),
                      next_try, r.last_error)
    return table


@app.command("list")
def list_work(stopped: bool = typer.Option(False, "--stopped",
                                           help="Only items stopped for an operator."),
              tenant: str | None = TenantOption, config: Path | None = ConfigOption) -> None:
    """Show each failed item: what it is, how often it failed, why, and when it is next
    tried."""
    loaded = config_from(config)
    name = pick_tenant(loaded, tenant)

    async def go() -> list[WorkRecord]:
        from optibridge.domain import WorkState
        from optibridge.store import open_store

        store = await open_store(loaded.server.database_url)
        try:
            return await store.work_failures(
                name, state=WorkState.STOPPED if stopped else None)
        finally:
            await store.db.dispose()

    records = run(go())
    if not records:
        console.print(f"{name}: no failed work")
        return
    console.print(work_table(name, records))


@app.command()
def requeue(kind: Annotated[str | None, typer.Argument(
                help=f"Only this kind ({KINDS}).", show_default=False)] = None,
            items: Annotated[list[str] | None, typer.Argument(
                help="Only these items, as 'work list' names them.",
                show_default=False)] = None,
            retrying: bool = typer.Option(False, "--retrying",
                                          help="Also items still backing off: try them now."),
            tenant: str | None = TenantOption, config: Path | None = ConfigOption) -> None:
    """Try stopped items again from the start of their back-off (a running serve picks
    them up on its next pass)."""
    loaded = config_from(config)
    name = pick_tenant(loaded, tenant)
    kinds = [_kind(kind)] if kind else []
    if items and not kinds:
        raise fail("name the kind before the items")

    async def go() -> int:
        from optibridge.store import open_store

        store = await open_store(loaded.server.database_url)
        try:
            return await store.requeue_work(name, kinds, items or [],
                                            stopped_only=not retrying)
        finally:
            await store.db.dispose()

    count = run(go())
    console.print(f"{name}: requeued {count} item{'s' if count != 1 else ''}")


def leftover_line(record: CreateRecord) -> str:
    """One create per line, its name whole (an operator searches the platform for it)."""
    return (f"{record.id}  {record.state}  {record.made} {record.name!r}  send {record.send_id}"
            f"  asked {_utc(record.asked_at)} UTC" + (f"\n    {record.note}" if record.note
                                                     else ""))


@app.command()
def leftovers(forget: Annotated[list[int] | None, typer.Option(
                  "--forget", help="Settle these held creates (you deleted what they made, "
                                   "or found nothing); repeatable.", show_default=False)] = None,
              tenant: str | None = TenantOption, config: Path | None = ConfigOption) -> None:
    """Creates on the platform whose answer was lost and what they made is not yet found
    and deleted; 'held' ones wait for you to look for them by name on the platform."""
    loaded = config_from(config)
    name = pick_tenant(loaded, tenant)

    async def go() -> tuple[int, list[CreateRecord]]:
        from optibridge.domain import CreateState
        from optibridge.store import open_store
        from optibridge.store.leftovers import OPEN

        store = await open_store(loaded.server.database_url)
        try:
            held = await store.creates(name, [CreateState.HELD])
            settled = 0
            for record in held:
                if record.id in (forget or []):
                    settled += await store.settle_create(
                        record.id, CreateState.HELD, CreateState.DELETED,
                        note=f"settled by an operator; {record.note or ''}")
            return settled, await store.creates(name, [*OPEN, CreateState.HELD])
        finally:
            await store.db.dispose()

    settled, records = run(go())
    if forget:
        console.print(f"{name}: settled {settled} held create{'s' if settled != 1 else ''}")
    if not records:
        console.print(f"{name}: nothing left behind on the platform")
        return
    console.print(f"{name}: platform creates not settled", highlight=False)
    for record in records:
        console.print(leftover_line(record), highlight=False, soft_wrap=True, markup=False)
