"""Tenant leases: one process at a time does a tenant's background work.

Lease times are the database's clock, never a process's: a holder that was paused (or
whose clock drifts) learns how long its lease has left from the database itself.
"""

from __future__ import annotations

from sqlalchemy import Float, Select, cast, func, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from optibridge.domain import LeaseGrant
from optibridge.store.base import StoreBase
from optibridge.store.schema import TenantLease


def database_now(sqlite: bool) -> ColumnElement[float]:
    """Now, in Unix seconds, by the database server's clock."""
    if sqlite:
        return literal_column("((julianday('now') - 2440587.5) * 86400.0)", Float)
    return cast(func.extract("epoch", func.clock_timestamp()), Float)


def lease_left_query(sqlite: bool, tenant: str, holder: str, epoch: int
                     ) -> Select[float]:
    """The seconds the lease (holder, epoch) has left by the database's clock; no row if
    it moved (``seconds_left`` reads it)."""
    return (select(TenantLease.expires_at - database_now(sqlite))
            .where(TenantLease.tenant == tenant, TenantLease.holder == holder,
                   TenantLease.epoch == epoch))


def seconds_left(found: float | None) -> float:
    """``lease_left_query``'s answer: 0 if the lease lapsed or moved."""
    return max(float(found), 0.0) if found is not None else 0.0


class LeaseLost(Exception):
    """This process no longer holds the tenant's lease: stop calling Optimove, and its
    writes (which carry the old epoch) are refused."""


class LeaseStore(StoreBase):
    async def database_time(self, session: AsyncSession | None = None) -> float:
        """The database's clock (what lease expiries are compared with)."""
        if session is not None:
            return float(await session.scalar(select(database_now(self.db.sqlite))) or 0.0)
        async with self.db.read() as fresh:
            return await self.database_time(fresh)

    async def acquire_lease(self, tenant: str, holder: str, ttl: float) -> LeaseGrant:
        """Take or renew the lease."""
        async with self.db.write() as session:
            query = select(TenantLease).where(TenantLease.tenant == tenant)
            if not self.db.sqlite:
                query = query.with_for_update()
            lease = await session.scalar(query)
            now = await self.database_time(session)
            if lease is None:
                session.add(TenantLease(tenant=tenant, holder=holder, expires_at=now + ttl,
                                        epoch=1))
                return LeaseGrant(True, None, 1, ttl)
            if lease.holder == holder and lease.expires_at > now:
                lease.expires_at = now + ttl
                return LeaseGrant(True, None, lease.epoch, ttl)
            if lease.expires_at > now:
                return LeaseGrant(False, None, lease.epoch, 0.0)
            # Lapsed (even if it was ours: calls we had queued belong to the old epoch).
            previous = None if lease.holder == holder else lease.holder
            lease.holder, lease.expires_at = holder, now + ttl
            lease.epoch = lease.epoch + 1
            return LeaseGrant(True, previous, lease.epoch, ttl)

    async def release_lease(self, tenant: str, holder: str) -> None:
        """Let the lease lapse now; the row (and its epoch) stays, so the next holder's
        epoch is still greater than every earlier one."""
        async with self.db.write() as session:
            await session.execute(update(TenantLease).where(
                TenantLease.tenant == tenant, TenantLease.holder == holder)
                .values(expires_at=database_now(self.db.sqlite)))

    async def lease_holder(self, tenant: str) -> tuple[str, float] | None:
        async with self.db.read() as session:
            lease = await session.get(TenantLease, tenant)
            return None if lease is None else (lease.holder, lease.expires_at)

