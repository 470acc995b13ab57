"""Command groups whose module is imported only when one of their commands is used, so that
``optibridge --help`` does not pay for every command's imports."""

from __future__ import annotations

import functools
from importlib import import_module
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup


@functools.cache
def _group(module: str) -> Any:
    app = import_module(module).app
    app.rich_markup_mode = None  # plain help like every other group: no <bool> placeholders
    return typer.main.get_command(app)


def lazy_group(module: str) -> type[TyperGroup]:
    """A group class standing for ``module.app``; pass it as ``cls`` to ``add_typer``."""

    class Lazy(TyperGroup):
        def list_commands(self, ctx: Any) -> list[str]:
            commands: list[str] = _group(module).list_commands(ctx)
            return commands

        def get_command(self, ctx: Any, name: str) -> Any:
            return _group(module).get_command(ctx, name)

    return Lazy


def lazy_typer(module: str, help: str) -> typer.Typer:
    return typer.Typer(help=help, cls=lazy_group(module), no_args_is_help=True,
                       rich_markup_mode=None)
