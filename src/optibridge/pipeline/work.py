"""Items of background work fail alone: ``Isolation`` runs each item of one kind, keeps a
failure on the item with its back-off, and skips items that are backing off or stopped.

An item stops (``WorkState.STOPPED``) only after ``max_refusals`` failures that are about
the item itself (``optibridge.failures.about_the_item``): the other side refused its
content or answered it with a body we cannot use, or our own code could not handle it.
Everything else (timeouts, 5xx, 429, auth, a proxy's answer, a database that is away)
backs off and is retried for as long as it lasts: it says nothing about the item.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from optibridge.domain import SendRecord, WorkKind, WorkRecord, WorkState
from optibridge.failures import about_the_item
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.lease import LeaseLost

T = TypeVar("T")


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class Isolation:
    """One pass over the items of one kind: ``due`` says whether to try an item now,
    ``run`` runs it and keeps its failure (None) instead of raising it."""

    def __init__(self, ctx: TenantContext, kind: WorkKind,
                 failures: dict[str, WorkRecord]) -> None:
        self.ctx, self.kind, self.failures = ctx, kind, failures
        self.now = ctx.store.clock()

    @classmethod
    async def load(cls, ctx: TenantContext, kind: WorkKind) -> Isolation:
        return cls(ctx, kind, await ctx.store.work_waiting(ctx.name, kind))

    def due(self, item: object) -> bool:
        found = self.failures.get(str(item))
        return found is None or not found.waiting(self.now)

    def waiting(self) -> list[str]:
        """Items not to be tried in this pass (for queries that leave them out)."""
        return [item for item, record in self.failures.items() if record.waiting(self.now)]

    async def run(self, item: object, work: Awaitable[T], **about: object) -> T | None:
        key = str(item)
        try:
            result = await work
        except (asyncio.CancelledError, LeaseLost):
            raise
        except Exception as error:
            await self.failed(key, error, **about)
            return None
        await self.succeeded(key)
        return result

    async def succeeded(self, key: str) -> None:
        if key in self.failures:
            await self.ctx.store.clear_work_failure(self.ctx.name, self.kind, key)
            del self.failures[key]

    async def failed(self, key: str, error: BaseException, **about: object) -> WorkRecord:
        ctx, message = self.ctx, describe(error)
        record = await ctx.store.record_work_failure(
            ctx.name, self.kind, key, message, refused=about_the_item(error),
            policy=ctx.work_retry)
        self.failures[key] = record
        if record.state == WorkState.STOPPED:
            ctx.log.error("work.stopped", kind=str(self.kind), item=key, error=message,
                          attempts=record.attempts, **about)
            await ctx.store.record_problem(
                ctx.name, str(self.kind), f"{self.kind} {key} stopped after "
                f"{record.attempts} tries: {message} (requeue: optibridge work requeue "
                f"-t {ctx.name} {self.kind} {key})", key=f"work {self.kind} {key}")
        else:
            ctx.log.warning("work.failed", kind=str(self.kind), item=key, error=message,
                            attempts=record.attempts, retry_in=round(record.next_at -
                                                                     self.now, 1), **about)
        return record


async def run_send(isolation: Isolation, send: SendRecord, work: Awaitable[T]) -> T | None:
    """Run one send's part of a step as its item of work; its error is also kept on the
    send (``last_error``, shown with it on ``/ui``) until the step works for it again."""
    store, key = isolation.ctx.store, str(send.id)
    try:
        result = await work
    except (asyncio.CancelledError, LeaseLost):
        raise
    except Exception as error:
        record = await isolation.failed(key, error, campaign=send.campaign_id)
        stopped = " (stopped)" if record.state == WorkState.STOPPED else ""
        await store.update_send(send.id, last_error=(describe(error) + stopped)[:2000])
        return None
    if key in isolation.failures:
        await store.update_send(send.id, last_error=None)
    await isolation.succeeded(key)
    return result
