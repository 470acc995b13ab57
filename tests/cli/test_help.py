"""The command line as a newcomer meets it: fast help, a version, plain help texts."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from optibridge.cli import app

HEAVY = ("pydantic", "sqlalchemy", "httpx", "uvicorn", "starlette", "alembic",
         "optibridge.config", "optibridge.pipeline", "optibridge.store", "optibridge.demo")


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    if hasattr(command, "list_commands"):  # a group (typer bundles its own click)
        for name in command.list_commands(None):
            yield from commands(command.get_command(None, name), (*path, name))


ALL = list(commands(typer.main.get_command(app)))


def test_help_and_version_import_nothing_heavy() -> None:
    """--help is fast because no command imports its machinery before it runs (measured in
    the report, not asserted as a time)."""
    code = ("import sys; from optibridge.cli import app; "
            f"print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("optibridge 0."), result.output


@pytest.mark.parametrize("path", [path for path, _ in ALL], ids=lambda p: " ".join(p) or "-")
def test_help_texts_are_plain_and_complete(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    for noise in ("``", "<bool>", "<%"):
        assert noise not in result.output, (noise, result.output)


@pytest.mark.parametrize(("path", "command"), ALL, ids=[" ".join(p) or "-" for p, _ in ALL])
def test_every_option_and_command_has_help(path: tuple[str, ...], command: Any) -> None:
    assert (command.help or "").strip(), path
    assert command.params or hasattr(command, "list_commands"), path
    for param in command.params:
        assert (getattr(param, "help", None) or "").strip(), (path, param.name)
