"""Issue 13 item 7: a create on the platform whose answer is lost after the platform applied
it is never retried blindly; the send makes it again under a new name, and the sweep finds
and deletes what the lost one made (or holds it for an operator when it cannot be found).
Both sandboxes over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from optibridge.demo import Rehearsal
from optibridge.domain import ChannelType, CreateState, Made, SendRecord, SendState
from optibridge.pipeline.execution import execute_pending_sends
from optibridge.pipeline.worker import pull_step
from optibridge.sandbox.platform import PlatformFaults
from optibridge.store import open_store
from tests.pipeline.conftest import assert_reconciled, run_to_the_end
from tests.pipeline.test_isolation import config_data, context, passes, rows
from tests.worlds import EMAIL, TENANT, World, open_world


def world_of(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             scattered_ids: bool) -> AbstractContextManager[World]:
    return open_world(database_url, tmp_path, monkeypatch, source="leftovers", seed=5,
                      data_of=config_data, scattered_ids=scattered_ids)


@pytest.fixture
def world(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[World]:
    with world_of(database_url, tmp_path, monkeypatch, scattered_ids=False) as made:
        yield made


@pytest.fixture
def scattered(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
              ) -> Iterator[World]:
    with world_of(database_url, tmp_path, monkeypatch, scattered_ids=True) as made:
        yield made


def lose(made: str) -> PlatformFaults:
    """The next create of ``made`` is applied and its answer lost."""
    return PlatformFaults(lost_answer_rate=1.0, lost_answers_of=(made,), lost_answers_max=1)


async def test_lost_create_answers_leave_no_list_or_draft_and_the_send_is_made_once(
        world: World) -> None:
    template = world.platform.add_template("T", ChannelType.EMAIL, "<p>Hi {{FirstName}}</p>")
    world.optimove.load_audience(TENANT, 70, EMAIL, rows("G", 3, template=template))
    async with context(world) as ctx:
        await ctx.store.record_notification(TENANT, 13, 70, EMAIL, {})
        await passes(pull_step, ctx, 1)
        send = (await ctx.store.sends(TENANT, list(SendState)))[0]
        # A create that a crash interrupted after the platform applied it.
        crashed = await ctx.store.create_asked(TENANT, send.id, Made.LIST, "crashed")
        await ctx.platform.create_list(crashed.name)
        await asyncio.sleep(0.01)
        ctx.started_at = ctx.store.clock()  # a new holder of the lease
        world.platform.set_faults(lose("list"))
        await execute_pending_sends(ctx)  # the list's answer is lost
        assert (await ctx.store.get_send(send.id)).state == SendState.NEW  # type: ignore[union-attr]
        world.platform.set_faults(lose("campaign"))
        await passes(execute_pending_sends, ctx, 8)  # ... then the campaign's
        world.platform.set_faults(None)
        done = await ctx.store.get_send(send.id)
        assert done is not None and done.state == SendState.READY
        assert await ctx.store.creates(TENANT) == []  # nothing open
        deleted = await ctx.store.creates(TENANT, [CreateState.DELETED])
        assert sorted(str(d.made) for d in deleted) == ["campaign", "list", "list"]
        assert await ctx.store.work_failures(TENANT) == []
    # On the platform: the send's one list and one campaign, no DRAFT, no stray list.
    assert list(world.platform.lists()) == [done.list_id]
    campaigns = world.platform.campaigns()
    assert [(c.id, c.state.value) for c in campaigns] == [(done.platform_campaign_id, "READY")]


async def test_a_lost_create_that_cannot_be_found_is_held_for_an_operator(
        scattered: World) -> None:
    world = scattered  # IDs at random: they say nothing of where the lost one is
    template = world.platform.add_template("T", ChannelType.EMAIL, "<p>Hi {{FirstName}}</p>")
    world.optimove.load_audience(TENANT, 71, EMAIL, rows("S", 2, template=template))
    async with context(world) as ctx:
        await ctx.store.record_notification(TENANT, 13, 71, EMAIL, {})
        await passes(pull_step, ctx, 1)
        world.platform.set_faults(lose("campaign"))
        await passes(execute_pending_sends, ctx, 6)
        send = (await ctx.store.sends(TENANT, list(SendState)))[0]
        assert send.state == SendState.READY
        held = await ctx.store.creates(TENANT, [CreateState.HELD])
        assert [h.made for h in held] == [Made.CAMPAIGN] and held[0].note
        assert await ctx.store.creates(TENANT) == []
        problems = [p.message for p in await ctx.store.recent_problems(20)]
    assert any(held[0].name in p and "--forget" in p for p in problems), problems
    # The DRAFT is still there (nothing could find it); the operator sees its name.
    drafts = [c for c in world.platform.campaigns() if c.state.value == "DRAFT"]
    assert [c.name for c in drafts] == [held[0].name]
    listed = await asyncio.to_thread(world.cli, "work", "leftovers")
    assert listed.exit_code == 0 and held[0].name in listed.output, listed.output
    world.platform.delete_campaign(drafts[0].id)  # the operator deletes it by hand
    forgot = await asyncio.to_thread(world.cli, "work", "leftovers", "--forget",
                                     str(held[0].id))
    assert forgot.exit_code == 0, forgot.output
    assert "settled 1 held create" in forgot.output
    assert "nothing left behind" in forgot.output


def test_a_campaign_whose_create_answers_are_lost_is_reported_once_and_leaves_nothing(
        rehearsal: Rehearsal) -> None:
    # Half of the lists' and campaigns' create answers (four at most) are lost after the
    # platform made them.
    rehearsal.platform_faults = PlatformFaults(lost_answer_rate=0.5, lost_answers_max=4,
                                               seed=11)
    rehearsal.timing = {**rehearsal.timing, "retry_first": 0.2, "retry_longest": 1.0}
    assert_reconciled(run_to_the_end(rehearsal, timeout=180))
    platform = rehearsal.platform
    assert platform.faults is not None and platform._dice.answers_lost >= 2
    sends = asyncio.run(_sends(rehearsal))
    assert all(s.state == SendState.DONE for s in sends), sends
    # Exactly one platform campaign per send, each sent; only the sends' lists remain.
    campaign_ids = [s.platform_campaign_id for s in sends if s.platform_campaign_id is not None]
    list_ids = [s.list_id for s in sends if s.list_id is not None]
    assert len(campaign_ids) == len(list_ids) == len(sends), sends  # each send made both
    assert sorted(c.id for c in platform.campaigns()) == sorted(campaign_ids)
    assert all(c.state.value == "DONE" for c in platform.campaigns())
    assert sorted(platform.lists()) == sorted(list_ids)


async def _sends(rehearsal: Rehearsal) -> list[SendRecord]:
    store = await open_store(rehearsal.config.server.database_url)
    try:
        assert await store.creates() == [] and not await store.creates(
            states=[CreateState.HELD])
        return await store.sends("demo", list(SendState))
    finally:
        await store.db.dispose()
