"""Builds the running service from the config: store, clients, contexts, worker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from optibridge.config import Config, TenantConfig
from optibridge.offload import Offload
from optibridge.optimove.client import OptimoveClient
from optibridge.optimove.events import EngagementEventsClient
from optibridge.pipeline.callbacks import InboxWriter
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.lease import (
    FollowingLimiter,
    FollowingWindow,
    LeasedLimiter,
    LeasedWindow,
)
from optibridge.pipeline.worker import Worker, new_holder
from optibridge.platform.api import Platform
from optibridge.platform.client import PlatformClient
from optibridge.signing import UrlSigner
from optibridge.store import Store, open_store

PlatformFactory = Callable[[TenantConfig], Platform]


@dataclass
class Service:
    config: Config
    store: Store
    signer: UrlSigner
    contexts: dict[str, TenantContext]
    limiters: dict[str, LeasedLimiter]
    writer: InboxWriter
    holder: str
    offload: Offload

    def worker(self, *, lease_ttl: float = 30.0, takeover_wait: bool = True) -> Worker:
        return Worker(self.contexts, self.limiters, lease_ttl=lease_ttl,
                      takeover_wait=takeover_wait, holder=self.holder)

    async def close(self) -> None:
        for ctx in self.contexts.values():
            await ctx.optimove.aclose()
            if ctx.events is not None:
                await ctx.events.aclose()
            await ctx.platform.aclose()
        self.offload.close()
        await self.store.db.dispose()


def _platform(tenant: TenantConfig) -> Platform:
    return PlatformClient.from_config(tenant.platform)


def _events_client(store: Store, tenant: TenantConfig, primary: LeasedLimiter
                   ) -> EngagementEventsClient | None:
    """saveEvent with its own rate limit, counted in the database like the API key's and
    under the same lease; None without a token (its batches then wait, pending)."""
    section = tenant.engagement_events
    if section.token is None:
        return None
    limit = section.rate_limit
    window = FollowingWindow(store, f"saveEvent:{section.endpoint()}", limit.requests,
                             limit.per_seconds, primary.window)
    limiter = FollowingLimiter(window, primary)
    return EngagementEventsClient(section.endpoint(), section.secret(), limiter=limiter,
                                  timeout=section.timeout_seconds)


async def build_service(config: Config, *,
                        platform_factory: PlatformFactory = _platform) -> Service:
    store = await open_store(config.server.database_url)
    signer = UrlSigner(config.server.secret(), config.server.public_url)
    contexts: dict[str, TenantContext] = {}
    limiters: dict[str, LeasedLimiter] = {}
    holder = new_holder()
    offload = Offload(config.server.decode_processes)  # one for every tenant's pulls
    for name, tenant in config.tenants.items():
        # The key's window is counted in the database: other tenants with the same key,
        # other replicas and CLI commands share it.
        window = LeasedWindow(store, tenant.key(), tenant.rate_limit.requests,
                              tenant.rate_limit.per_seconds, tenant=name, holder=holder)
        limiter = limiters[name] = LeasedLimiter(window)
        optimove = OptimoveClient(tenant.optimove_url, tenant.key(),
                                  path_prefix=tenant.path_prefix, limiter=limiter,
                                  readback=tenant.readback.call())
        contexts[name] = TenantContext(
            name=name, tenant=tenant, config=config, store=store, optimove=optimove,
            platform=platform_factory(tenant), signer=signer,
            timing=config.timing, lease=window, offload=offload,
            events=_events_client(store, tenant, limiter))
    return Service(config, store, signer, contexts, limiters, InboxWriter(store), holder,
                   offload)
