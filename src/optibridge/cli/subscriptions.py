"""``optibridge subscriptions push``: share opt-in states with Optimove (seed 002, part 3)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from optibridge.cli.common import ConfigOption, config_from, console, errors, fail, run
from optibridge.cli.tenants import TenantOption, pick_tenant, tenant_context

if TYPE_CHECKING:
    from optibridge.config import Config
    from optibridge.pipeline.subscriptions import Source

app = typer.Typer(help="Share customers' opt-in states with Optimove.", no_args_is_help=True,
                  rich_markup_mode=None)


class Mode(StrEnum):
    """The choices of --mode; the same values as the pipeline's Mode, declared here so that
    the command's help does not import the pipeline."""

    ATTRIBUTE = "attribute"
    PREFERENCE = "preference"
    FILE = "file"


def _csv_source(path: Path, reject_file: Path | None) -> Source:
    from optibridge.pipeline.subscriptions import read_csv, write_rejects

    try:
        source = read_csv(path)
    except (OSError, UnicodeDecodeError) as error:
        raise fail(f"cannot read {path}: {error}") from None
    if source.rejects:
        target = reject_file or path.with_name(path.name + ".rejects.csv")
        write_rejects(target, source.rejects)
        for bad in source.rejects[:10]:
            errors.print(f"row {bad.row}: {bad.reason}", highlight=False, markup=False)
        errors.print(f"{len(source.rejects)} bad rows skipped, written to {target}; "
                     f"{len(source.entries)} rows will be pushed", highlight=False)
    return source


async def _push(config: Config, name: str, mode: Mode, csv_path: Path | None,
                channel: int | None, attribute: str, batch_size: int | None,
                output: Path | None, modes: tuple[int, int], reject_file: Path | None
                ) -> int:
    from optibridge.optimove.models import MAX_PREFERENCE_CUSTOMERS
    from optibridge.pipeline.subscriptions import (
        bounced_source,
        push_attributes,
        push_preferences,
        write_batch_file,
    )

    async with tenant_context(config, name) as ctx:
        if csv_path is not None:
            source = _csv_source(csv_path, reject_file)
        else:
            assert channel is not None
            source = await bounced_source(ctx.store, name, channel)
        entries = source.entries
        with Progress(TextColumn(f"{mode} push"), BarColumn(),
                      TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
                      TimeElapsedColumn(), console=console) as bars:
            task = bars.add_task("push", total=len(entries))

            def advance(count: int) -> None:
                bars.advance(task, count)

            if mode == Mode.ATTRIBUTE:
                return await push_attributes(ctx.optimove, entries, attribute,
                                             batch_size or ctx.tenant.attributes_batch_size,
                                             advance)
            if mode == Mode.PREFERENCE:
                assert channel is not None
                return await push_preferences(ctx.optimove, channel, entries,
                                              batch_size or MAX_PREFERENCE_CUSTOMERS,
                                              modes[0], modes[1], advance)
            assert output is not None
            return write_batch_file(output, entries, attribute, advance)


def _check(mode: Mode, csv_path: Path | None, bounces: bool, channel: int | None,
           output: Path | None, config: Config, name: str) -> None:
    if (csv_path is None) == (not bounces):
        raise fail("name one source: --csv FILE or --bounces")
    if (bounces or mode == Mode.PREFERENCE) and channel is None:
        raise fail("--channel is needed with --bounces and with --mode preference")
    if channel is not None and channel not in config.tenant(name).channels:
        raise fail(f"channel {channel} is not configured for tenant {name!r}")
    if mode == Mode.FILE and output is None:
        raise fail("--mode file needs --output FILE")


ModeOption = Annotated[Mode, typer.Option("--mode", "-m", help="attribute, preference or file.")]
CsvOption = Annotated[Path | None, typer.Option(
    "--csv", help="CSV of customer ID and opt-in state (1/0, true/false, ...).")]
OutputOption = Annotated[Path | None, typer.Option(
    "--output", "-o", help="The batch file to write (--mode file).")]
RejectOption = Annotated[Path | None, typer.Option(
    help="Where bad CSV rows go (default: CSV.rejects.csv).")]


@app.command()
def push(mode: ModeOption, csv_path: CsvOption = None,
         bounces: bool = typer.Option(
             False, "--bounces", help="Opt out every customer whose message on --channel "
                                      "bounced (the address cannot receive)."),
         channel: int | None = typer.Option(None, "--channel", help="Optimove ChannelID."),
         attribute: str = typer.Option("OptIn", "--attribute",
                                       help="Attribute (or file column) name."),
         batch_size: int | None = typer.Option(
             None, "--batch-size", min=1, help="Customers a call (attribute: default the "
             "tenant's attributes_batch_size, at most 10,000; preference: at most 50,000)."),
         output: OutputOption = None,
         opt_in_mode: int = typer.Option(1, help="CommunicationMode for opted-in customers."),
         opt_out_mode: int = typer.Option(0, help="CommunicationMode for opted-out ones."),
         reject_file: RejectOption = None,
         tenant: str | None = TenantOption, config: Path | None = ConfigOption) -> None:
    """Push opt-in states to Optimove as an attribute, a channel preference or a file."""
    from optibridge.optimove.errors import OptimoveError

    loaded = config_from(config)
    name = pick_tenant(loaded, tenant)
    _check(mode, csv_path, bounces, channel, output, loaded, name)
    try:
        pushed = run(_push(loaded, name, mode, csv_path, channel, attribute, batch_size,
                           output, (opt_in_mode, opt_out_mode), reject_file))
    except (OptimoveError, ValueError, OSError) as error:
        raise fail(f"{error} (re-running the push is safe: every call sets values)", 1) \
            from None
    where = f" to {output}" if mode == Mode.FILE else ""
    console.print(f"pushed {pushed:,} customers ({mode}){where}")
