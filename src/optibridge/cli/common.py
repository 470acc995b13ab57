"""What every command shares: loading the config and turning errors into messages.

The command modules import only typer, rich and the standard library at module level; what a
command needs (pydantic, SQLAlchemy, httpx, the pipeline) is imported when it runs, so that
``optibridge --help`` and ``--version`` answer at once."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console

if TYPE_CHECKING:
    from optibridge.config import Config

T = TypeVar("T")
console = Console()
errors = Console(stderr=True)

ConfigOption = typer.Option(
    None, "--config", "-c", envvar="OPTIBRIDGE_CONFIG",
    help="The TOML configuration file (default: ./optibridge.toml).")


def fail(message: str, code: int = 2) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def config_from(path: Path | None) -> Config:
    from optibridge.config import ConfigError, load_config

    path = path or Path(os.environ.get("OPTIBRIDGE_CONFIG", "optibridge.toml"))
    try:
        return load_config(path)
    except ConfigError as error:
        raise fail(str(error)) from None


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def run_calls(coroutine: Coroutine[Any, Any, T], *also: type[Exception]) -> T:
    """Run a command's calls to Optimove or the platform: a failed call (or one of ``also``)
    ends the command with its message and exit code 1."""
    from optibridge.failures import CallFailed

    caught: tuple[type[Exception], ...] = (CallFailed, *also)
    try:
        return asyncio.run(coroutine)
    except caught as error:
        raise fail(str(error), 1) from None
