"""Tenant leases: one process at a time does a tenant's background work."""

from __future__ import annotations

from sqlalchemy import delete, select

from optibridge.store.base import StoreBase
from optibridge.store.schema import TenantLease


class LeaseStore(StoreBase):
    async def acquire_lease(self, tenant: str, holder: str, ttl: float
                            ) -> tuple[bool, str | None]:
        """Take or renew the lease; returns (held, previous holder if we took it over)."""
        async with self.db.write() as session:
            query = select(TenantLease).where(TenantLease.tenant == tenant)
            if not self.db.sqlite:
                query = query.with_for_update()
            lease = await session.scalar(query)
            now = self.clock()
            if lease is None:
                session.add(TenantLease(tenant=tenant, holder=holder, expires_at=now + ttl))
                return True, None
            if lease.holder == holder:
                lease.expires_at = now + ttl
                return True, None
            if lease.expires_at > now:
                return False, None
            previous = lease.holder
            lease.holder, lease.expires_at = holder, now + ttl
            return True, previous

    async def release_lease(self, tenant: str, holder: str) -> None:
        async with self.db.write() as session:
            await session.execute(delete(TenantLease).where(
                TenantLease.tenant == tenant, TenantLease.holder == holder))

    async def lease_holder(self, tenant: str) -> tuple[str, float] | None:
        async with self.db.read() as session:
            lease = await session.get(TenantLease, tenant)
            return None if lease is None else (lease.holder, lease.expires_at)
