"""``optibridge batches``: list by state and campaign, show, requeue, resolve by hand."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import tomli_w
from typer.testing import CliRunner

from optibridge.cli import app
from optibridge.domain import BatchState
from optibridge.store import Store, open_store
from tests.store.test_batch_states import batches_of


def write_config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "optibridge.toml"
    path.write_text(tomli_w.dumps({
        "server": {"public_url": "https://bridge.example", "signing_secret": "s" * 20,
                   "database_url": database_url},
        "tenants": {"t": {
            "optimove_url": "http://127.0.0.1:9", "api_key": "k",
            "channels": {"504": {"type": "email", "address_attribute": "Email"}},
            "platform": {"base_url": "http://127.0.0.1:9", "api_key": "p",
                         "bounce_domain": 1}}}}))
    return path


async def three_batches(database_url: str) -> list[int]:
    """A dead letter, an in-doubt batch and a pending one."""
    store = await open_store(database_url)
    try:
        ids = await batches_of(store, 3)
        for batch_id in ids[:2]:
            await store.mark_batch(batch_id, BatchState.SENDING)
        await store.mark_batch(ids[0], BatchState.DEAD_LETTER, error="rejected with 400",
                               answer='{"error":"bad TemplateID"}', event="call",
                               actor="host:1:abc", epoch=None)
        await store.mark_batch(ids[1], BatchState.IN_DOUBT, error="timed out", event="call",
                               actor="host:1:abc")
        return ids
    finally:
        await store.db.dispose()


async def states(database_url: str) -> dict[int, str]:
    store: Store = await open_store(database_url)
    try:
        return {b.id: str(b.state) for b in await store.batches("t", list(BatchState))}
    finally:
        await store.db.dispose()


def test_batches_list_show_requeue_resolve(tmp_path: Path, database_url: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    dead, doubt, pending = asyncio.run(three_batches(database_url))
    path = str(write_config(tmp_path, database_url))
    runner = CliRunner()

    def cli(*args: str) -> str:
        done = runner.invoke(app, ["batches", *args, "-c", path])
        assert done.exit_code == 0, done.output
        return done.output

    listed = json.loads(cli("list", "--state", "dead_letter", "--state", "in_doubt", "--json"))
    assert [(r["id"], r["state"]) for r in listed] == [(dead, "dead_letter"),
                                                      (doubt, "in_doubt")]
    assert "dead_letter: 1" in cli("list")
    assert json.loads(cli("list", "--campaign", "999", "--json")) == []
    shown = json.loads(cli("show", str(dead), "--json"))
    assert shown["answer"] == '{"error":"bad TemplateID"}' and shown["customer_ids"]
    assert [(e["kind"], e["by"]) for e in shown["events"]] == [("call", "host:1:abc")]
    assert "bad TemplateID" in cli("show", str(dead))

    assert "requeued 1" in cli("requeue", str(dead), "--by", "alice", "--note", "fixed")
    out = cli("resolve", str(doubt), "--not-landed", "--by", "bob")
    assert "pending (it will be sent again)" in out
    assert asyncio.run(states(database_url)) == {dead: "pending", doubt: "pending",
                                                 pending: "pending"}
    events = json.loads(cli("show", str(doubt), "--json"))["events"]
    assert [(e["kind"], e["by"], e["state"]) for e in events] == [
        ("call", "host:1:abc", "in_doubt"), ("resolve", "bob", "pending")]
    requeued = json.loads(cli("show", str(dead), "--json"))["events"][-1]
    assert (requeued["kind"], requeued["by"], requeued["detail"]) == ("requeue", "alice",
                                                                       "fixed")

    # What cannot be done says so and changes nothing.
    again = runner.invoke(app, ["batches", "resolve", str(doubt), "--landed", "-c", path])
    assert again.exit_code == 1 and "not in doubt" in again.output
    undecided = runner.invoke(app, ["batches", "resolve", str(doubt), "-c", path])
    assert undecided.exit_code == 2 and "--landed or --not-landed" in undecided.output
    stranger = runner.invoke(app, ["batches", "show", "99999", "-c", path])
    assert stranger.exit_code == 1 and "no report batch 99999" in stranger.output
    bad = runner.invoke(app, ["batches", "list", "--state", "failed", "-c", path])
    assert bad.exit_code == 2 and "dead_letter" in bad.output
    assert "requeued 0" in runner.invoke(
        app, ["batches", "requeue", "--all", "-c", path]).output
