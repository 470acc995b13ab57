"""Creates on the platform that cannot double, and the sweep of what lost answers left.

The platform has no idempotency key and no listing of lists or campaigns (platform-api.md),
so a create (``POST /list``, ``POST /campaign``) whose answer is lost may have made an
object we do not know of. Every create is recorded before it is made, under a name of its
own (``store/leftovers.py``); the client never retries one that may have reached the
platform, and the send tries again on its next pass with a new create. The sweep then looks
for each lost one by ID and name, and deletes it (a DRAFT or an empty list: never sent).

Assumption (no source says it): the platform counts its IDs up, so a lost create's object
has an ID between the last one we were given before it and the first one we were given
after it. Up to ``PROBES`` IDs there are read (``GET /campaign/ID``, ``GET /list/ID``); an
object of the create's name is it. When the range is read through and nothing has the name,
the create made nothing (``absent``). When the range is too wide, or the IDs are not in
order, the create is ``held``: a problem row names what to look for, and
``optibridge work leftovers`` lists it for an operator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from optibridge.domain import CreateRecord, CreateState, Made, SendRecord
from optibridge.failures import NOT_APPLIED
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.lease import LeaseLost
from optibridge.pipeline.work import describe
from optibridge.platform.errors import (
    PlatformAuthError,
    PlatformError,
    PlatformNotFound,
    PlatformRequestRejected,
)

T = TypeVar("T")
PROBES = 50  # IDs read, at most, to find one lost create
PATIENCE = 600.0  # seconds a lost create waits for a later create to bound its ID


async def create_once(ctx: TenantContext, send: SendRecord, made: Made, name: str,
                      create: Callable[[str], Awaitable[T]]) -> tuple[CreateRecord, T]:
    """Record the create, then make it under the recorded (unique) name. A failure after
    which it may have been made leaves the record ``lost`` for the sweep."""
    record = await ctx.store.create_asked(ctx.name, send.id, made, name)
    try:
        result = await create(record.name)
    except (asyncio.CancelledError, LeaseLost):
        raise  # left 'asking': the next holder of the lease takes it as lost
    except NOT_APPLIED:  # the create surely made nothing (it is never sent twice)
        await ctx.store.create_refused(record.id)
        raise
    except Exception as error:
        await ctx.store.create_lost(record.id, describe(error))
        ctx.log.warning("execution.create_lost", send=send.id, made=str(made),
                        name=record.name, error=describe(error))
        raise
    return record, result


async def discard(ctx: TenantContext, made: Made, platform_id: int) -> None:
    """Delete an object of ours; one already gone is as good as deleted."""
    try:
        if made == Made.LIST:
            await ctx.platform.delete_list(platform_id)
        else:
            await ctx.platform.delete_campaign(platform_id)
    except PlatformNotFound:
        pass


async def discard_orphan(ctx: TenantContext, record: CreateRecord, platform_id: int) -> None:
    await discard(ctx, record.made, platform_id)
    await ctx.store.settle_create(record.id, CreateState.ORPHAN, CreateState.DELETED,
                                  platform_id=platform_id)
    ctx.log.info("leftovers.deleted", made=str(record.made), platform_id=platform_id,
                 name=record.name)


async def sweep_leftovers(ctx: TenantContext) -> int:
    """Delete what lost answers and interrupted steps left on the platform; how many
    objects were settled. An outage ends the sweep until the next pass."""
    settled = 0
    for record in await ctx.store.creates(ctx.name):
        try:
            settled += await _settle(ctx, record)
        except PlatformAuthError as error:
            ctx.log.info("leftovers.sweep_later", create=record.id, error=describe(error))
            break
        except PlatformRequestRejected as error:  # its deletion refused: for an operator
            settled += await _hold(ctx, record, f"its deletion was refused: {error}")
        except PlatformError as error:
            ctx.log.info("leftovers.sweep_later", create=record.id, error=describe(error))
            break
    return settled


async def _settle(ctx: TenantContext, record: CreateRecord) -> int:
    if record.state == CreateState.ASKING:
        # Nothing of ours is under way from before this process took the lease.
        if record.asked_at >= ctx.started_at:
            return 0
        await ctx.store.settle_create(record.id, CreateState.ASKING, CreateState.LOST,
                                      note="interrupted (the process stopped or lost its "
                                           "lease while the create was under way)")
        return 0
    if record.state == CreateState.ORPHAN:
        assert record.platform_id is not None
        await discard_orphan(ctx, record, record.platform_id)
        return 1
    return await _look_for(ctx, record)


async def _look_for(ctx: TenantContext, record: CreateRecord) -> int:
    low, high = await ctx.store.create_bounds(record)
    assert record.answered_at is not None
    if high is None and ctx.store.clock() - record.answered_at < PATIENCE:
        return 0  # the send's next create will bound it
    if high is not None and high <= low:
        return await _hold(ctx, record, "the platform's IDs are not in the order they were "
                                        "given out, so they cannot say where it is")
    top = (high - 1) if high is not None else low + PROBES
    bottom = max(low + 1, top - PROBES + 1)
    for candidate in range(top, bottom - 1, -1):  # nearest the retry first
        if await _name_of(ctx, record.made, candidate) == record.name:
            await ctx.store.settle_create(record.id, CreateState.LOST, CreateState.ORPHAN,
                                          platform_id=candidate)
            await discard_orphan(ctx, replace(record, state=CreateState.ORPHAN), candidate)
            return 1
    if high is not None and bottom == low + 1:
        await ctx.store.settle_create(record.id, CreateState.LOST, CreateState.ABSENT,
                                      note=f"no {record.made} of its name among IDs "
                                           f"{low + 1}..{high - 1}: it made nothing")
        return 1
    return await _hold(ctx, record, f"not among the {top - bottom + 1} IDs read "
                                    f"({bottom}..{top})")


async def _name_of(ctx: TenantContext, made: Made, platform_id: int) -> str | None:
    try:
        if made == Made.LIST:
            return (await ctx.platform.get_list(platform_id)).name
        return (await ctx.platform.get_campaign(platform_id)).name
    except PlatformAuthError:
        raise
    except PlatformRequestRejected:
        return None  # not there (404), or not ours to read


async def _hold(ctx: TenantContext, record: CreateRecord, why: str) -> int:
    note = (f"the {record.made} {record.name!r} may be on the platform ({why}); delete it "
            f"there if it is, then: optibridge work leftovers -t {ctx.name} --forget "
            f"{record.id}")
    await ctx.store.settle_create(record.id, record.state, CreateState.HELD, note=note)
    ctx.log.error("leftovers.held", create=record.id, made=str(record.made),
                  name=record.name, why=why)
    await ctx.store.record_problem(ctx.name, "leftovers", note,
                                   key=f"leftover {record.id}")
    return 1
