"""``optibridge listeners``: register, unregister and list Optimove listeners (flow 1)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import typer
from rich.table import Table

from optibridge.cli.common import ConfigOption, config_from, console, fail, run
from optibridge.config import Config, ConfigError
from optibridge.optimove.client import OptimoveClient
from optibridge.optimove.errors import OptimoveError
from optibridge.pipeline.listener import (
    ListenerRegistration,
    register_listeners,
    unregister_listeners,
)

app = typer.Typer(help="Register the service's listeners with Optimove (flow 1).",
                  no_args_is_help=True)
TenantOption = typer.Option(..., "--tenant", "-t", help="The tenant, as named in the config.")


def _client(config: Path | None, tenant: str) -> tuple[OptimoveClient, str]:
    loaded = config_from(config)
    try:
        return OptimoveClient.from_tenant(loaded.tenant(tenant)), tenant
    except ConfigError as error:
        raise fail(str(error)) from None


Change = Callable[[Config, str, OptimoveClient], Awaitable[list[ListenerRegistration]]]


def _apply(change: Change, verb: str, tenant: str, config: Path | None) -> None:
    loaded = config_from(config)
    client, _ = _client(config, tenant)

    async def go() -> None:
        async with client:
            done = await change(loaded, tenant, client)
        for item in done:
            console.print(f"{verb} EventTypeID {item.event_type} on channel {item.channel_id}")

    try:
        run(go())
    except OptimoveError as error:
        raise fail(str(error), 1) from None


@app.command()
def register(tenant: str = TenantOption, config: Path | None = ConfigOption) -> None:
    """Register EventTypeIDs 13, 1 and 4 per scheduled channel, 11 on the triggered one."""
    _apply(register_listeners, "registered", tenant, config)


@app.command()
def unregister(tenant: str = TenantOption, config: Path | None = ConfigOption) -> None:
    """Remove the listeners ``register`` added."""
    _apply(unregister_listeners, "unregistered", tenant, config)


@app.command("list")
def list_(tenant: str = TenantOption, config: Path | None = ConfigOption) -> None:
    """Show what Optimove has registered for the tenant."""
    client, _ = _client(config, tenant)

    async def go() -> None:
        async with client:
            found = await client.get_registered_event_listeners()
        table = Table("EventTypeID", "ChannelID", "ListenerURL")
        for item in found:
            # The URL holds the tenant's listener token: show only where it goes.
            url = item.listener_url.rsplit("/", 1)[0] + "/…"
            table.add_row(str(item.event_type_id), str(item.channel_id or ""), url)
        console.print(table)

    try:
        run(go())
    except OptimoveError as error:
        raise fail(str(error), 1) from None
