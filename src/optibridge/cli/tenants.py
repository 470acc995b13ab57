"""What the template, subscription and read-back commands share: picking the tenant and
building its context (store, Optimove and platform clients) outside ``serve``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import typer

from optibridge.cli.common import fail

if TYPE_CHECKING:
    from optibridge.config import Config, TenantConfig
    from optibridge.optimove.client import OptimoveClient
    from optibridge.pipeline.context import TenantContext
    from optibridge.ratelimit import SlidingWindowLimiter
    from optibridge.store import Store

TenantOption = typer.Option(None, "--tenant", "-t",
                            help="The tenant, as named in the config (default: the only one).")


def pick_tenant(config: Config, tenant: str | None) -> str:
    if tenant is not None:
        if tenant not in config.tenants:
            raise fail(f"unknown tenant {tenant!r} (configured: "
                       f"{', '.join(sorted(config.tenants))})")
        return tenant
    if len(config.tenants) != 1:
        raise fail(f"several tenants are configured ({', '.join(sorted(config.tenants))}): "
                   "choose one with --tenant")
    return next(iter(config.tenants))


def shared_limiter(tenant: TenantConfig, store: Store) -> SlidingWindowLimiter:
    """The key's limiter whose calls count in its window with ``serve``'s (the database
    counts them), so a command run beside it never pushes the key over its limit."""
    from optibridge.pipeline.lease import KeyWindow
    from optibridge.ratelimit import SlidingWindowLimiter

    limit = tenant.rate_limit
    window = KeyWindow(store, tenant.key(), limit.requests, limit.per_seconds)
    return SlidingWindowLimiter(limit.requests, limit.per_seconds, shared=window)


def shared_client(tenant: TenantConfig, store: Store) -> OptimoveClient:
    """An Optimove client on ``shared_limiter``."""
    from optibridge.optimove.client import OptimoveClient

    return OptimoveClient(tenant.optimove_url, tenant.key(), path_prefix=tenant.path_prefix,
                          limiter=shared_limiter(tenant, store),
                          readback=tenant.readback.call())


@asynccontextmanager
async def shared_optimove(config: Config, name: str) -> AsyncIterator[OptimoveClient]:
    """``shared_client`` on the configured database, for a command that needs no more."""
    from optibridge.store import open_store

    store = await open_store(config.server.database_url)
    client = shared_client(config.tenant(name), store)
    try:
        yield client
    finally:
        await client.aclose()
        await store.db.dispose()


@asynccontextmanager
async def tenant_context(config: Config, name: str) -> AsyncIterator[TenantContext]:
    """A context like the service's, for one command; closed afterwards."""
    from optibridge.pipeline.context import TenantContext
    from optibridge.platform.client import PlatformClient
    from optibridge.signing import UrlSigner
    from optibridge.store import open_store

    tenant = config.tenant(name)
    store = await open_store(config.server.database_url)
    optimove = shared_client(tenant, store)
    platform = PlatformClient.from_config(tenant.platform)
    try:
        yield TenantContext(name=name, tenant=tenant, config=config, store=store,
                            optimove=optimove, platform=platform,
                            signer=UrlSigner(config.server.secret(), config.server.public_url))
    finally:
        await optimove.aclose()
        await platform.aclose()
        await store.db.dispose()
