"""``optibridge listeners``: register, unregister and list Optimove listeners (flow 1)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from optibridge.cli.common import ConfigOption, config_from, console, run_calls
from optibridge.cli.tenants import TenantOption, pick_tenant, shared_optimove

if TYPE_CHECKING:
    from optibridge.config import Config
    from optibridge.optimove.client import OptimoveClient
    from optibridge.pipeline.listener import ListenerRegistration

    Change = Callable[[Config, str, OptimoveClient], Awaitable[list[ListenerRegistration]]]

app = typer.Typer(help="Register the service's listeners with Optimove (flow 1).",
                  no_args_is_help=True,
                  rich_markup_mode=None)


def _apply(change: Change, verb: str, tenant: str | None, config: Path | None) -> None:
    loaded = config_from(config)
    name = pick_tenant(loaded, tenant)

    async def go() -> None:
        # The calls count in the key's window with serve's (see shared_client).
        async with shared_optimove(loaded, name) as client:
            done = await change(loaded, name, client)
        for item in done:
            console.print(f"{verb} EventTypeID {item.event_type} on channel {item.channel_id}")

    run_calls(go())


@app.command()
def register(tenant: str | None = TenantOption, config: Path | None = ConfigOption) -> None:
    """Register EventTypeIDs 13, 1 and 4 per scheduled channel, 11 on the triggered one."""
    from optibridge.pipeline.listener import register_listeners

    _apply(register_listeners, "registered", tenant, config)


@app.command()
def unregister(tenant: str | None = TenantOption, config: Path | None = ConfigOption) -> None:
    """Remove the listeners that register added."""
    from optibridge.pipeline.listener import unregister_listeners

    _apply(unregister_listeners, "unregistered", tenant, config)


@app.command("list")
def list_(tenant: str | None = TenantOption, config: Path | None = ConfigOption) -> None:
    """Show what Optimove has registered for the tenant."""
    loaded = config_from(config)
    name = pick_tenant(loaded, tenant)

    async def go() -> None:
        async with shared_optimove(loaded, name) as client:
            found = await client.get_registered_event_listeners()
        table = Table("EventTypeID", "ChannelID", "ListenerURL")
        for item in found:
            # The URL holds the tenant's listener token: show only where it goes.
            url = item.listener_url.rsplit("/", 1)[0] + "/…"
            table.add_row(str(item.event_type_id), str(item.channel_id or ""), url)
        console.print(table)

    run_calls(go())


@app.command()
def webhook(tenant: str | None = TenantOption, config: Path | None = ConfigOption) -> None:
    """Print the URL to enter in Optimove's UI Webhook Configuration for EventTypeID 14
    (audiences as files); it holds the tenant's listener token: treat it as a secret."""
    from optibridge.pipeline.listener import listener_url

    loaded = config_from(config)
    name = pick_tenant(loaded, tenant)
    console.print(listener_url(loaded, name), highlight=False, soft_wrap=True)
