"""``optibridge doctor``: what is fine and what to fix, before (or while) serving."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import typer
from rich.table import Table

from optibridge.cli.common import ConfigOption, console

if TYPE_CHECKING:
    from optibridge.config import Config, ConfigError, TenantConfig
    from optibridge.optimove.client import OptimoveClient
    from optibridge.retry import RetryPolicy
    from optibridge.store import Store

TIMEOUT = 10.0


def _quick() -> RetryPolicy:
    """Two tries: doctor says what is wrong rather than waiting it out."""
    from optibridge.retry import RetryPolicy

    return RetryPolicy(attempts=2, base_delay=0.2, max_delay=1.0)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warn: bool = False  # fine to run with, but worth a look (the exit status stays 0)


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _short(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:200]


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


async def check_database(config: Config) -> Check:
    from optibridge.store.migrate import is_current

    url = config.server.database_url
    try:
        sqlite_file = _sqlite_file(url)
    except Exception as error:
        return Check("database", False, _short(error), "fix server.database_url")
    if sqlite_file is not None and not sqlite_file.exists():
        # Connecting would create an empty file here; serve creates and migrates it.
        return Check("database", True, f"{sqlite_file} does not exist yet",
                     "`optibridge serve` creates and migrates it at start-up", warn=True)
    try:
        current = await asyncio.to_thread(is_current, url)
    except Exception as error:
        return Check("database", False, _short(error),
                     "check server.database_url and that the database server is up")
    if not current:
        return Check("database", False, "reachable, but migrations are not current",
                     "start `optibridge serve` once: it migrates at start-up")
    return Check("database", True, "reachable, migrations current")


async def current_store(config: Config) -> Store | None:
    """A store on the configured database if it exists and is migrated (else None: doctor
    never creates a database; the database check says what is missing)."""
    from optibridge.store import Database, Store
    from optibridge.store.migrate import is_current

    url = config.server.database_url
    try:
        sqlite_file = _sqlite_file(url)
        if sqlite_file is not None and not sqlite_file.exists():
            return None  # connecting would create it
        if not await asyncio.to_thread(is_current, url):
            return None
    except Exception:
        return None
    return Store(Database(url))


@asynccontextmanager
async def optimove_client(config: Config, tenant: TenantConfig) -> AsyncIterator[OptimoveClient]:
    """Doctor's Optimove client (two quick tries). Its calls count in the key's window with
    ``serve``'s when the database is there, so doctor run beside a busy service never pushes
    the key over its limit; without a database nothing else can be using the window."""
    from optibridge.cli.tenants import shared_limiter
    from optibridge.optimove.client import OptimoveClient

    store = await current_store(config)
    client = OptimoveClient(tenant.optimove_url, tenant.key(), path_prefix=tenant.path_prefix,
                            retry=_quick(), timeout=TIMEOUT,
                            limiter=None if store is None else shared_limiter(tenant, store),
                            readback=tenant.readback.call())
    try:
        yield client
    finally:
        await client.aclose()
        if store is not None:
            await store.db.dispose()


def _key_failed(what: str, error: Exception, fix_key: str, fix_url: str) -> Check:
    """A key check that failed: the key refused (``fix_key``), or the service not reached
    or failing (``fix_url``)."""
    from optibridge.failures import AuthRefused

    if isinstance(error, AuthRefused):
        return Check(what, False, f"refused ({error.status})", fix_key)
    return Check(what, False, _short(error), fix_url)


async def check_optimove(config: Config, name: str, tenant: TenantConfig) -> Check:
    import httpx

    from optibridge.failures import CallFailed

    what = f"tenant {name}: Optimove key"
    try:
        async with optimove_client(config, tenant) as client:
            listeners = await client.get_registered_event_listeners()
    except (CallFailed, httpx.HTTPError) as error:
        return _key_failed(
            what, error, f"put this tenant's API key in ${tenant.api_key_env or 'api_key_env'}",
            f"check tenants.{name}.optimove_url")
    return Check(what, True, f"accepted; {len(listeners)} event listeners registered")


async def check_platform(name: str, tenant: TenantConfig) -> Check:
    import httpx

    from optibridge.failures import CallFailed
    from optibridge.platform.client import PlatformClient

    what = f"tenant {name}: platform key"
    platform = tenant.platform
    client = PlatformClient(platform.base_url, platform.key(), retry=_quick(), timeout=TIMEOUT)
    try:
        domains = await client.list_domains()
    except (CallFailed, httpx.HTTPError) as error:
        return _key_failed(
            what, error, f"put the platform API key in ${platform.api_key_env or 'api_key_env'}",
            f"check tenants.{name}.platform.base_url")
    finally:
        await client.aclose()
    bouncing = [d.id for d in domains if d.bouncing]
    if platform.bounce_domain not in bouncing:
        return Check(what, False, f"accepted, but domain {platform.bounce_domain} is not a "
                     f"bouncing domain (bouncing: {bouncing or 'none'})",
                     f"set tenants.{name}.platform.bounce_domain to one of {bouncing}")
    return Check(what, True, f"accepted; bounce domain {platform.bounce_domain} is bouncing")


def check_public_scheme(config: Config) -> Check | None:
    """Optimove and the platform call public_url over the Internet: it must be HTTPS."""
    public = config.server.public_url
    if public.startswith("https://"):
        return None
    host = urlsplit(public).hostname or ""
    local = host in ("localhost", "127.0.0.1", "::1")
    return Check("public URL scheme", True,
                 f"{public} is plain HTTP" + (" (fine for a rehearsal on this machine)"
                                              if local else ""),
                 "use an https:// public_url for Optimove and the platform: put the service "
                 "behind a TLS-terminating proxy (README: Deploying)", warn=True)


def check_admin_token(config: Config) -> Check:
    server = config.server
    if server.admin_token is not None:
        return Check("admin token", True, "/ui and /metrics need the admin token")
    named = f"${server.admin_token_env} is not set" if server.admin_token_env \
        else "no admin_token_env is configured"
    fix = f"export {server.admin_token_env}=..." if server.admin_token_env \
        else "set server.admin_token_env and export that variable"
    return Check("admin token", True, f"{named}: /ui and /metrics answer only requests "
                 "from this machine", f"{fix} to reach them from elsewhere", warn=True)


async def check_public_url(config: Config) -> Check:
    import httpx

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
        checks.append(await check_optimove(config, name, tenant))
        checks.append(await check_platform(name, tenant))
        checks.append(await _readback_check(config, name, tenant))
        checks.append(_reporting_check(name, tenant))
    checks.append(check_admin_token(config))
    scheme = check_public_scheme(config)
    if scheme is not None:
        checks.append(scheme)
    checks.append(await check_public_url(config))
    return checks


async def _readback_check(config: Config, name: str, tenant: TenantConfig) -> Check:
    from optibridge.cli.doctor_readback import check_readback  # it imports this module

    return await check_readback(config, name, tenant)


def _reporting_check(name: str, tenant: TenantConfig) -> Check:
    from optibridge.cli.doctor_reporting import check_reporting  # it imports this module

    return check_reporting(name, tenant)


def table(checks: list[Check]) -> Table:
    result = Table("check", "", "what we found", "what to do", title="optibridge doctor")
    for check in checks:
        status = "[red]FIX[/]" if not check.ok else "[yellow]warn[/]" if check.warn \
            else "[green]ok[/]"
        result.add_row(check.name, status, check.detail, check.fix)
    return result


def config_checks(error: ConfigError, path: Path) -> list[Check]:
    """One row per problem, each with its own fix (export a variable, or edit a key)."""
    if not error.problems:
        return [Check("config", False, str(error), f"fix {path}")]
    return [Check(f"config: {problem.where}", False,
                  f"{problem.variable} (environment): {problem.message}"
                  if problem.variable and not problem.missing else problem.message,
                  problem.fix(str(path)))
            for problem in error.problems]


def doctor(config: Path | None = ConfigOption) -> None:
    """Check the config, the database, each tenant's keys and the public URL."""
    from optibridge.config import ConfigError, load_config

    path = config or Path(os.environ.get("OPTIBRIDGE_CONFIG", "optibridge.toml"))
    try:
        loaded = load_config(path)
    except ConfigError as error:
        checks = config_checks(error, path)
    else:
        checks = [Check("config", True, f"{path}: {plural(len(loaded.tenants), 'tenant')}"),
                  *asyncio.run(run_checks(loaded))]
    console.print(table(checks))
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(doctor)
