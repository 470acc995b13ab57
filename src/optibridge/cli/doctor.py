"""``optibridge doctor``: what is fine and what to fix, before (or while) serving."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import httpx
import typer
from rich.table import Table

from optibridge.cli.common import ConfigOption, console
from optibridge.config import Config, ConfigError, TenantConfig, load_config
from optibridge.optimove.client import OptimoveClient
from optibridge.optimove.errors import OptimoveAuthError, OptimoveError
from optibridge.platform.client import PlatformClient
from optibridge.platform.errors import PlatformAuthError, PlatformError
from optibridge.retry import RetryPolicy
from optibridge.store.migrate import is_current

QUICK = RetryPolicy(attempts=2, base_delay=0.2, max_delay=1.0)
TIMEOUT = 10.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _short(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:200]


async def check_database(config: Config) -> Check:
    url = config.server.database_url
    try:
        current = await asyncio.to_thread(is_current, url)
    except Exception as error:
        return Check("database", False, _short(error),
                     "check server.database_url and that the database server is up")
    if not current:
        return Check("database", False, "reachable, but migrations are not current",
                     "start `optibridge serve` once: it migrates at start-up")
    return Check("database", True, "reachable, migrations current")


async def check_optimove(name: str, tenant: TenantConfig) -> Check:
    what = f"tenant {name}: Optimove key"
    client = OptimoveClient(tenant.optimove_url, tenant.key(), path_prefix=tenant.path_prefix,
                            retry=QUICK, timeout=TIMEOUT)
    try:
        listeners = await client.get_registered_event_listeners()
    except OptimoveAuthError as error:
        return Check(what, False, f"refused ({error.status})",
                     f"put this tenant's API key in ${tenant.api_key_env or 'api_key_env'}")
    except (OptimoveError, httpx.HTTPError) as error:
        return Check(what, False, _short(error), f"check tenants.{name}.optimove_url")
    finally:
        await client.aclose()
    return Check(what, True, f"accepted; {len(listeners)} event listeners registered")


async def check_platform(name: str, tenant: TenantConfig) -> Check:
    what = f"tenant {name}: platform key"
    platform = tenant.platform
    client = PlatformClient(platform.base_url, platform.key(), retry=QUICK, timeout=TIMEOUT)
    try:
        domains = await client.list_domains()
    except PlatformAuthError as error:
        return Check(what, False, f"refused ({error.status})",
                     f"put the platform API key in ${platform.api_key_env or 'api_key_env'}")
    except (PlatformError, httpx.HTTPError) as error:
        return Check(what, False, _short(error), f"check tenants.{name}.platform.base_url")
    finally:
        await client.aclose()
    bouncing = [d.id for d in domains if d.bouncing]
    if platform.bounce_domain not in bouncing:
        return Check(what, False, f"accepted, but domain {platform.bounce_domain} is not a "
                     f"bouncing domain (bouncing: {bouncing or 'none'})",
                     f"set tenants.{name}.platform.bounce_domain to one of {bouncing}")
    return Check(what, True, f"accepted; bounce domain {platform.bounce_domain} is bouncing")


async def check_public_url(config: Config) -> Check:
    url = f"{config.server.public_url}/healthz"
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.get(url)
    except httpx.HTTPError as error:
        return Check("public URL", False, f"{url}: {_short(error)}",
                     "start `optibridge serve` and route server.public_url to it")
    if response.status_code != 200:
        return Check("public URL", False, f"{url} answered {response.status_code}",
                     "server.public_url must reach this service (see /healthz)")
    return Check("public URL", True, f"{url} answered 200")


async def run_checks(config: Config) -> list[Check]:
    """Every check after the config's: the database, each key, the public URL."""
    checks = [await check_database(config)]
    for name, tenant in config.tenants.items():
        checks.append(await check_optimove(name, tenant))
        checks.append(await check_platform(name, tenant))
    checks.append(await check_public_url(config))
    return checks


def table(checks: list[Check]) -> Table:
    result = Table("check", "", "what we found", "what to do", title="optibridge doctor")
    for check in checks:
        result.add_row(check.name, "[green]ok[/]" if check.ok else "[red]FIX[/]",
                       check.detail, check.fix)
    return result


def doctor(config: Path | None = ConfigOption) -> None:
    """Check the config, the database, each tenant's keys and the public URL."""
    path = config or Path("optibridge.toml")
    try:
        loaded = load_config(path)
    except ConfigError as error:
        checks = [Check("config", False, str(error), f"fix {path}")]
    else:
        checks = [Check("config", True, f"{path}: {len(loaded.tenants)} tenants"),
                  *asyncio.run(run_checks(loaded))]
    console.print(table(checks))
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(doctor)
