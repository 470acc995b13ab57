"""``optibridge templates sync``: Optimove's channel templates := the platform's (flow 2)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from optibridge.cli.common import ConfigOption, config_from, console, run_calls
from optibridge.cli.tenants import pick_tenant, tenant_context

if TYPE_CHECKING:
    from optibridge.config import Config
    from optibridge.pipeline.templates import TemplateDiff

app = typer.Typer(help="Keep Optimove's channel templates equal to the platform's (flow 2).",
                  no_args_is_help=True,
                  rich_markup_mode=None)


def show(tenant: str, diff: TemplateDiff, dry_run: bool) -> None:
    for warning in diff.warnings:
        console.print(f"[yellow]warning:[/] {tenant}: {warning}", highlight=False)
    verb = "would change" if dry_run else "changed"
    if diff.empty:
        console.print(f"{tenant} channel {diff.channel_id}: in sync")
        return
    console.print(f"{tenant} channel {diff.channel_id}: {verb} {len(diff.add)} added, "
                  f"{len(diff.delete)} deleted, {len(diff.rename)} renamed")
    for line in diff.lines():
        console.print(f"  {line}", highlight=False, markup=False)


async def _sync(config: Config, tenants: list[str], dry_run: bool) -> None:
    from optibridge.pipeline.templates import sync_templates

    for name in tenants:
        async with tenant_context(config, name) as ctx:
            for diff in await sync_templates(ctx, dry_run=dry_run):
                show(name, diff, dry_run)


@app.command()
def sync(tenant: str | None = typer.Option(None, "--tenant", "-t",
                                           help="Only this tenant (default: every tenant)."),
         dry_run: bool = typer.Option(False, "--dry-run",
                                      help="Show the diff without changing Optimove."),
         config: Path | None = ConfigOption) -> None:
    """Add new, delete removed and rename changed templates on every configured channel."""
    from optibridge.store.triggers import TemplateIdConflict

    loaded = config_from(config)
    tenants = [pick_tenant(loaded, tenant)] if tenant else sorted(loaded.tenants)
    run_calls(_sync(loaded, tenants, dry_run), TemplateIdConflict)
