"""``optibridge batches``: what became of each report batch, and an operator's hand on the
ones that need one (requeue a dead letter, resolve an in-doubt batch), each action
recorded with who and when."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from optibridge.cli.common import ConfigOption, config_from, console, fail, run
from optibridge.cli.tenants import TenantOption, pick_tenant
from optibridge.domain import BatchState, ReportBatchRecord

if TYPE_CHECKING:  # the store is imported when a command runs, not for --help
    from optibridge.store import Store
    from optibridge.store.reports import BatchDetail

app = typer.Typer(no_args_is_help=True, help=(
    "Report batches (one UpdateCampaignInteractions or saveEvent call each): list them by "
    "state, show "
    "one, requeue dead letters, resolve an in-doubt batch by hand."))

STATES = ", ".join(str(s) for s in BatchState)
ByOption = typer.Option(None, "--by", help="Who acts (default: USER@HOST), kept with the action.")
NoteOption = typer.Option(None, "--note", help="Why, kept with the action.")


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _utc(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _event(batch: ReportBatchRecord) -> str:
    from optibridge.domain import Backend
    from optibridge.optimove.models import METRIC_OF, InteractionEvent

    if batch.backend == Backend.ENGAGEMENT_EVENTS:  # our event, by its metric ID
        return next((str(e) for e, m in METRIC_OF.items() if int(m) == batch.event_id),
                    str(batch.event_id))
    try:
        return InteractionEvent(batch.event_id).name.lower()
    except ValueError:
        return str(batch.event_id)


def _states(values: list[str]) -> list[BatchState]:
    try:
        return [BatchState(v) for v in values] or list(BatchState)
    except ValueError:
        raise fail(f"--state: one of {STATES}") from None


async def _with_store(config: Path | None, tenant: str | None) -> tuple[Store, str]:
    from optibridge.store import open_store

    loaded = config_from(config)
    name = pick_tenant(loaded, tenant)
    return await open_store(loaded.server.database_url), name


def _row(batch: ReportBatchRecord) -> dict[str, Any]:
    return {"id": batch.id, "state": str(batch.state), "campaign_id": batch.campaign_id,
            "channel_id": batch.channel_id, "template_id": batch.template_id,
            "event": _event(batch), "date": batch.interaction_date.isoformat(),
            "customers": batch.size, "attempts": batch.attempts,
            "updated": _utc(batch.updated_at), "backend": str(batch.backend)}


@app.command("list")
def list_batches(
        state: list[str] = typer.Option([], "--state", "-s",
                                        help=f"Only these states (repeatable): {STATES}."),
        campaign: int | None = typer.Option(None, "--campaign", help="Only this CampaignID."),
        limit: int = typer.Option(50, "--limit", "-n", min=1, help="At most this many."),
        after: int = typer.Option(0, "--after", min=0, help="Only batches after this id."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON rows."),
        tenant: str | None = TenantOption, config: Path | None = ConfigOption) -> None:
    """List report batches, oldest first, with the count of each state."""
    states = _states(state)

    async def go() -> tuple[list[ReportBatchRecord], dict[BatchState, int]]:
        store, name = await _with_store(config, tenant)
        try:
            return (await store.batches(name, states, limit, campaign_id=campaign, after=after),
                    await store.batch_counts(name))
        finally:
            await store.db.dispose()

    batches, counts = run(go())
    if as_json:
        print(json.dumps([_row(b) for b in batches], indent=1))
        return
    console.print("  ".join(f"{s}: {counts.get(s, 0):,}" for s in BatchState), highlight=False)
    table = Table("id", "state", "campaign", "channel", "template", "event", "date",
                  "customers", "attempts", "updated (UTC)", "backend")
    for b in batches:
        table.add_row(*(str(v) for v in _row(b).values()))
    console.print(table)
    if len(batches) == limit:
        console.print(f"more after id {batches[-1].id}: --after {batches[-1].id}")


def _print_detail(detail: BatchDetail, customers: list[str]) -> None:
    for key, value in _row(detail.batch).items():
        console.print(f"{key:>12}: {value}", highlight=False, markup=False)
    console.print(f"{'created':>12}: {_utc(detail.created_at)}", highlight=False)
    if detail.last_error:
        console.print(f"{'last error':>12}: {detail.last_error}", highlight=False,
                      markup=False, soft_wrap=True)
    if detail.answer:
        console.print(f"{'answer':>12}: {detail.answer}", highlight=False, markup=False,
                      soft_wrap=True)
    shown = ", ".join(customers[:10]) + (" ..." if len(customers) > 10 else "")
    console.print(f"{'CustomerIDs':>12}: {shown}", highlight=False, markup=False)
    table = Table("when (UTC)", "what", "by", "led to", "epoch", "detail",
                  title="calls, read-backs and actions")
    for e in detail.events:
        table.add_row(_utc(e.at), e.kind, e.actor, e.state or "",
                      "" if e.epoch is None else str(e.epoch), e.detail or "")
    console.print(table)


@app.command()
def show(batch_id: int = typer.Argument(..., help="The batch's id (from `batches list`)."),
         as_json: bool = typer.Option(False, "--json", help="Print JSON."),
         tenant: str | None = TenantOption, config: Path | None = ConfigOption) -> None:
    """Show one batch: what it reports, and its calls, read-backs and operator actions."""

    async def go() -> tuple[BatchDetail | None, list[str], str]:
        store, name = await _with_store(config, tenant)
        try:
            return (await store.batch_detail(batch_id), await store.batch_customers(batch_id),
                    name)
        finally:
            await store.db.dispose()

    detail, customers, name = run(go())
    if detail is None or detail.batch.tenant != name:
        raise fail(f"no report batch {batch_id} for tenant {name!r}", 1)
    if as_json:
        print(json.dumps({**_row(detail.batch), "last_error": detail.last_error,
                          "answer": detail.answer, "customer_ids": customers,
                          "events": [{"at": _utc(e.at), "kind": e.kind, "by": e.actor,
                                      "state": e.state, "epoch": e.epoch,
                                      "detail": e.detail} for e in detail.events]}, indent=1))
        return
    _print_detail(detail, customers)


async def _tenant_batches(store: Store, name: str, ids: list[int]) -> list[int]:
    """The ids that are batches of this tenant (an id of another tenant is an error)."""
    for batch_id in ids:
        found = await store.batch_detail(batch_id)
        if found is None or found.batch.tenant != name:
            raise fail(f"no report batch {batch_id} for tenant {name!r}", 1)
    return ids


@app.command()
def requeue(batch_ids: list[int] = typer.Argument(None, help="Dead-letter batch ids."),
            all_dead: bool = typer.Option(False, "--all",
                                          help="Every dead letter (of --campaign, if given)."),
            campaign: int | None = typer.Option(None, "--campaign", help="With --all."),
            by: str | None = ByOption, note: str | None = NoteOption,
            tenant: str | None = TenantOption, config: Path | None = ConfigOption) -> None:
    """Send dead-letter batches again (once what Optimove refused is fixed)."""
    if bool(batch_ids) == all_dead:
        raise fail("name the batches, or give --all")

    async def go() -> tuple[list[int], list[int]]:
        store, name = await _with_store(config, tenant)
        try:
            if all_dead:
                ids: list[int] = []
                while page := await store.batches(name, [BatchState.DEAD_LETTER], 1_000,
                                                  campaign_id=campaign,
                                                  after=ids[-1] if ids else 0):
                    ids += [b.id for b in page]
            else:
                ids = await _tenant_batches(store, name, list(batch_ids))
            return ids, await store.requeue_dead_letters(ids, actor=_who(by), detail=note)
        finally:
            await store.db.dispose()

    asked, requeued = run(go())
    console.print(f"requeued {len(requeued)} dead-letter batches: they are pending and "
                  "go out with the next report pass", highlight=False)
    skipped = sorted(set(asked) - set(requeued))
    if skipped:
        raise fail(f"not dead letters, left as they are: {', '.join(map(str, skipped))}", 1)


@app.command()
def resolve(batch_id: int = typer.Argument(..., help="The in-doubt batch's id."),
            landed: bool | None = typer.Option(
                None, "--landed/--not-landed",
                help="Optimove holds this batch (sent, never sent again) or it does not "
                     "(pending, sent again)."),
            by: str | None = ByOption, note: str | None = NoteOption,
            tenant: str | None = TenantOption, config: Path | None = ConfigOption) -> None:
    """Settle an in-doubt batch by hand, after checking Optimove (`optibridge interactions`)."""
    if landed is None:
        raise fail("say what you found: --landed or --not-landed")

    async def go() -> list[int]:
        store, name = await _with_store(config, tenant)
        try:
            await _tenant_batches(store, name, [batch_id])
            return await store.settle_in_doubt([batch_id], landed, kind="resolve",
                                               actor=_who(by), detail=note)
        finally:
            await store.db.dispose()

    if not run(go()):
        raise fail(f"batch {batch_id} is not in doubt: nothing changed", 1)
    outcome = "sent (it will not be sent again)" if landed else "pending (it will be sent again)"
    console.print(f"batch {batch_id} resolved by hand: {outcome}", highlight=False)
