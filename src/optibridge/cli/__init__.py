"""The ``optibridge`` command line."""

from __future__ import annotations

import typer

from optibridge.cli import (
    demo,
    doctor,
    listeners,
    readback,
    sandbox,
    serve,
    subscriptions,
    templates,
    work,
)
from optibridge.cli.lazy import lazy_typer

app = typer.Typer(
    name="optibridge", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="Runs Optimove campaigns on an email/SMS platform and reports back exactly once.")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"optibridge {version('optibridge')}")
        raise typer.Exit


@app.callback()
def _main(_: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit.")) -> None:
    """Runs Optimove campaigns on an email/SMS platform and reports back exactly once."""


serve.register(app)
demo.register(app)
sandbox.register(app)
app.add_typer(listeners.app, name="listeners")
app.add_typer(templates.app, name="templates")
app.add_typer(subscriptions.app, name="subscriptions")
# Imported when used: its module loads the store (see test_help's list of heavy modules).
app.add_typer(lazy_typer("optibridge.cli.batches",
                         "Report batches: list them by state, show one, requeue dead letters, "
                         "resolve an in-doubt batch by hand."), name="batches")
app.add_typer(work.app, name="work")
readback.register(app)
doctor.register(app)


def main() -> None:
    app()
