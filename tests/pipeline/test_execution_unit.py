"""Execution's steps against a scripted platform: a cancellation that lands mid-step wins."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from optibridge.config import TimingConfig
from optibridge.domain import AudienceEntry, SendRecord, SendState
from optibridge.pipeline import execution
from optibridge.pipeline.context import TenantContext
from optibridge.pipeline.execution import execute_send
from optibridge.pipeline.pull_first import PullFirst
from optibridge.platform.api import (
    CampaignState,
    ImportResult,
    PlatformCampaign,
    RejectedContact,
)
from optibridge.signing import UrlSigner
from optibridge.store import Store, open_store


class GatedPlatform:
    """Creates campaigns only when the test opens the gate; records deletions."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.deleted: list[int] = []
        self.moves: list[CampaignState] = []

    async def create_list(self, name: str) -> int:
        return 11

    async def add_contacts(self, list_id: int, contacts: Any) -> ImportResult:
        return ImportResult(added=len(contacts))

    async def create_campaign(self, *args: Any) -> PlatformCampaign:
        self.entered.set()
        await self.gate.wait()
        return PlatformCampaign(77, "n", CampaignState.DRAFT, 0, 11, 1)

    async def attach_payload(self, *args: Any) -> None:
        return None

    async def delete_campaign(self, campaign_id: int) -> None:
        self.deleted.append(campaign_id)

    async def get_campaign(self, campaign_id: int) -> PlatformCampaign:
        return PlatformCampaign(campaign_id, "n", CampaignState.DRAFT, 0, 11, 1)

    async def move_campaign(self, campaign_id: int, target: CampaignState,
                            current: Any = None) -> PlatformCampaign:
        self.moves.append(target)
        return PlatformCampaign(campaign_id, "n", target, 0, 11, 1)


async def one_send(store: Store) -> int:
    campaign, _ = await store.open_campaign("t", 1, 504)
    entries = [AudienceEntry("C1", 7, dt.datetime(2030, 1, 1), "c1@example.com")]
    await store.store_audience_page(campaign.id, "email", 0, entries, True)
    return (await store.sends("t", list(SendState)))[0].id


async def test_a_cancellation_during_campaign_creation_wins(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'x.db'}")
    platform = GatedPlatform()
    ctx = TenantContext(name="t", tenant=None, config=None, store=store,  # type: ignore[arg-type]
                        optimove=None, platform=platform,  # type: ignore[arg-type]
                        signer=UrlSigner(b"s" * 16, "http://127.0.0.1:9"))
    send_id = await one_send(store)
    send = await store.get_send(send_id)
    assert send is not None
    running = asyncio.create_task(execute_send(ctx, send))
    await platform.entered.wait()  # the campaign is being created on the platform...
    await store.update_send(send_id, state=SendState.CANCELLED)  # ...when EventTypeID 4 lands
    platform.gate.set()
    assert await running == SendState.CANCELLED
    final = await store.get_send(send_id)
    assert final is not None and final.state == SendState.CANCELLED
    assert platform.deleted == [77]  # the DRAFT it had just made is removed
    assert platform.moves == []  # and nothing was ever made READY
    await store.db.dispose()


class ImportingPlatform(GatedPlatform):
    """Imports in order, refuses some addresses, and fails one chunk when told to."""

    def __init__(self, refuse: set[str], fail_on_chunk: int | None = None) -> None:
        super().__init__()
        self.refuse, self.fail_on_chunk = refuse, fail_on_chunk
        self.chunks: list[list[str]] = []

    async def add_contacts(self, list_id: int, contacts: Any) -> ImportResult:
        addresses = [c.email for c in contacts]
        self.chunks.append(addresses)
        number = len(self.chunks)
        await asyncio.sleep(0.01 * (number % 2))  # answers overtake each other
        if number == self.fail_on_chunk:
            raise RuntimeError("platform down")
        rejected = tuple(RejectedContact(i, "refused") for i, a in enumerate(addresses)
                         if a in self.refuse)
        return ImportResult(added=len(addresses) - len(rejected), rejected=rejected)


async def _listed_send(store: Store, count: int) -> SendRecord:
    campaign, _ = await store.open_campaign("t", 1, 504)
    entries = [AudienceEntry(f"C{i}", 7, dt.datetime(2030, 1, 1), f"c{i}@example.com")
               for i in range(count)]
    await store.store_audience_page(campaign.id, "email", 0, entries, True)
    send_id = (await store.sends("t", list(SendState)))[0].id
    await store.update_send(send_id, state=SendState.LISTED, list_id=11)
    send = await store.get_send(send_id)
    assert send is not None
    return send


def _dropped(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return sorted(c for (c,) in db.execute(
            "SELECT customer_id FROM interaction WHERE event = 'dropped'"))


async def test_uploads_overlap_but_the_upload_point_moves_in_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execution, "UPLOAD_CHUNK", 3)
    store = await open_store(f"sqlite:///{tmp_path / 'x.db'}")
    platform = ImportingPlatform(refuse={"c4@example.com", "c9@example.com"})
    ctx = TenantContext(name="t", tenant=None, config=None, store=store,  # type: ignore[arg-type]
                        optimove=None, platform=platform,  # type: ignore[arg-type]
                        signer=UrlSigner(b"s" * 16, "http://127.0.0.1:9"))
    send = await _listed_send(store, 10)
    await execution.upload_recipients(ctx, send)
    uploaded = [address for chunk in platform.chunks for address in chunk]
    assert uploaded == [f"c{i}@example.com" for i in range(10)]
    assert _dropped(tmp_path / "x.db") == ["C4", "C9"]
    done = await store.get_send(send.id)
    assert done is not None and done.uploaded_through == 10  # every row, recorded
    await store.db.dispose()


async def test_a_failed_chunk_leaves_the_point_after_the_last_confirmed_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execution, "UPLOAD_CHUNK", 3)
    store = await open_store(f"sqlite:///{tmp_path / 'x.db'}")
    platform = ImportingPlatform(refuse={"c1@example.com", "c7@example.com"}, fail_on_chunk=3)
    ctx = TenantContext(name="t", tenant=None, config=None, store=store,  # type: ignore[arg-type]
                        optimove=None, platform=platform,  # type: ignore[arg-type]
                        signer=UrlSigner(b"s" * 16, "http://127.0.0.1:9"))
    send = await _listed_send(store, 10)
    with pytest.raises(RuntimeError, match="platform down"):
        await execution.upload_recipients(ctx, send)
    stopped = await store.get_send(send.id)
    assert stopped is not None and stopped.uploaded_through == 6  # chunks 1 and 2 only
    assert _dropped(tmp_path / "x.db") == ["C1"]  # chunk 3's refusal was never confirmed
    platform.fail_on_chunk = None
    await execution.upload_recipients(ctx, stopped)  # resumes from row 7
    assert platform.chunks[-2:] == [[f"c{i}@example.com" for i in (6, 7, 8)],
                                    ["c9@example.com"]]
    assert _dropped(tmp_path / "x.db") == ["C1", "C7"]
    await store.db.dispose()


async def test_a_send_uploads_while_its_campaign_is_pulled_and_starts_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execution, "UPLOAD_CHUNK", 2)
    store = await open_store(f"sqlite:///{tmp_path / 'x.db'}")
    platform = ImportingPlatform(refuse={"c1@example.com"})
    platform.gate.set()
    ctx = TenantContext(name="t", tenant=None, config=None, store=store,  # type: ignore[arg-type]
                        optimove=None, platform=platform,  # type: ignore[arg-type]
                        signer=UrlSigner(b"s" * 16, "http://127.0.0.1:9"))
    campaign, _ = await store.open_campaign("t", 1, 504)

    def page(numbers: range) -> list[AudienceEntry]:
        return [AudienceEntry(f"C{i}", 7, dt.datetime(2030, 1, 1), f"c{i}@example.com")
                for i in numbers]

    await store.store_audience_page(campaign.id, "email", 0, page(range(3)), False)
    assert await execution.execute_pending_sends(ctx) == 1  # list made, page 1 uploaded
    (send,) = await store.sends_being_pulled("t", list(SendState))
    assert send.state == SendState.LISTED and send.uploaded_through == 3
    assert [a for chunk in platform.chunks for a in chunk] == [
        f"c{i}@example.com" for i in range(3)]
    assert not platform.entered.is_set()  # no campaign before the list is complete
    assert await execution.execute_pending_sends(ctx) == 0  # nothing new: the loop pauses
    await store.store_audience_page(campaign.id, "email", 3, page(range(3, 5)), True)
    await execution.execute_pending_sends(ctx)
    done = await store.get_send(send.id)
    assert done is not None and done.state == SendState.READY
    # Every contact went up once, in order, the second page after the first.
    assert [a for chunk in platform.chunks for a in chunk] == [
        f"c{i}@example.com" for i in range(5)]
    assert platform.moves == [CampaignState.SCHEDULED, CampaignState.READY]
    assert _dropped(tmp_path / "x.db") == ["C1"]
    await store.db.dispose()


def _page(numbers: range) -> list[AudienceEntry]:
    return [AudienceEntry(f"C{i}", 7, dt.datetime(2030, 1, 1), f"c{i}@example.com")
            for i in numbers]


async def _pull_under_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, idle: float
                          ) -> tuple[TenantContext, ImportingPlatform, int, asyncio.Event]:
    """A campaign with a first page of six stored and its pull still going (chunks of 2):
    the context, the platform, the campaign's store key, and an event set once an upload
    waits for one of its pages to be stored."""
    monkeypatch.setattr(execution, "UPLOAD_CHUNK", 2)
    store = await open_store(f"sqlite:///{tmp_path / 'x.db'}")
    platform = ImportingPlatform(refuse=set())
    ctx = TenantContext(name="t", tenant=None, config=None, store=store,  # type: ignore[arg-type]
                        optimove=None, platform=platform,  # type: ignore[arg-type]
                        signer=UrlSigner(b"s" * 16, "http://127.0.0.1:9"),
                        timing=TimingConfig(idle=idle))
    waiting = asyncio.Event()
    wait = ctx.pull_first.wait

    async def spied(campaign_pk: int) -> None:
        waiting.set()
        await wait(campaign_pk)

    monkeypatch.setattr(ctx.pull_first, "wait", spied)
    campaign, _ = await store.open_campaign("t", 1, 504)
    await store.store_audience_page(campaign.id, "email", 0, _page(range(6)), False)
    return ctx, platform, campaign.id, waiting


async def test_uploads_beside_a_pull_wait_while_a_pulled_page_is_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pull has Optimove's clock against it, the uploads only ours: no chunk of its
    campaign's sends goes up while a page that came back waits to be stored; they go on
    when it is. Another campaign's page does not hold them up."""
    ctx, platform, campaign_pk, waiting = await _pull_under_way(tmp_path, monkeypatch, 30.0)
    with ctx.pull_first.storing(campaign_pk):  # its next page came back and is being stored
        passing = asyncio.create_task(execution.execute_pending_sends(ctx))
        await asyncio.wait_for(waiting.wait(), 10)  # the upload waits for the page
        assert platform.chunks == []
        assert not passing.done()
    assert await asyncio.wait_for(passing, 10) == 1
    assert [a for chunk in platform.chunks for a in chunk] == [
        f"c{i}@example.com" for i in range(6)]
    await ctx.store.store_audience_page(campaign_pk, "email", 6, _page(range(6, 10)), False)
    with ctx.pull_first.storing(campaign_pk + 1):  # another campaign's page
        assert await asyncio.wait_for(execution.execute_pending_sends(ctx), 10) == 1
    assert len([a for chunk in platform.chunks for a in chunk]) == 10
    await ctx.store.db.dispose()


async def test_a_pull_that_leaves_no_time_holds_the_execute_pass_at_most_an_idle_period(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages stored back to back: the upload beside the pull gives up after an idle
    period of waiting, so the pass (due and triggered sends) goes on; the upload point
    stays where it was, for the next pass."""
    ctx, platform, campaign_pk, waiting = await _pull_under_way(tmp_path, monkeypatch, 0.2)
    with ctx.pull_first.storing(campaign_pk):
        assert await asyncio.wait_for(execution.execute_pending_sends(ctx), 10) == 1
        assert waiting.is_set() and platform.chunks == []
    (send,) = await ctx.store.sends_being_pulled("t", list(SendState))
    assert send.state == SendState.LISTED and send.uploaded_through == 0
    await ctx.store.db.dispose()


async def test_pull_first_waits_out_a_page_that_follows_at_once() -> None:
    """A page stored and the next taken up before a waiting upload runs: it waits on."""
    pull_first = PullFirst()
    with pull_first.storing(1):
        waiting = asyncio.create_task(pull_first.wait(1))
        await asyncio.sleep(0)
    with pull_first.storing(1):  # the next page was already there
        await asyncio.sleep(0.05)
        assert not waiting.done()
    await asyncio.wait_for(waiting, 1.0)
    assert not pull_first.busy(1)


async def test_pull_first_holds_nothing_back_where_writes_go_side_by_side() -> None:
    """PostgreSQL: a page's store is the server's time; the uploads go on beside it."""
    pull_first = PullFirst(hold=False)
    with pull_first.storing(1):
        assert not pull_first.busy(1)
        await asyncio.wait_for(pull_first.wait(1), 1.0)
