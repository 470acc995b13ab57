"""The listener and callback endpoints over real HTTP: what they refuse stores nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from optibridge.config import Config, parse_config
from optibridge.domain import CampaignStage, ChannelType
from optibridge.pipeline.listener import handle_pending_notifications
from optibridge.platform.api import CallbackBatch, MessageEvent
from optibridge.platform.callbacks import encode_callback
from optibridge.service.app import create_app
from optibridge.service.assembly import build_service
from optibridge.serving import RunningServer, serving
from optibridge.signing import UrlSigner
from optibridge.store import Database, Store
from optibridge.store.schema import CallbackInbox, CallbackProblem, Notification

ENV = {"SECRET": "s" * 32, "OPTIMOVE_KEY": "k-optimove", "PLATFORM_KEY": "k-platform"}


def make_config(database_url: str) -> Config:
    return parse_config({
        "server": {"public_url": "http://127.0.0.1:9", "database_url": database_url,
                   "signing_secret_env": "SECRET"},
        "tenants": {"acme": {
            "optimove_url": "http://127.0.0.1:9", "api_key_env": "OPTIMOVE_KEY",
            "channels": {"504": {"type": "email", "address_attribute": "Email"}},
            "platform": {"base_url": "http://127.0.0.1:9", "api_key_env": "PLATFORM_KEY",
                         "bounce_domain": 1}}},
    }, environ=ENV)


@pytest.fixture
def service(database_url: str) -> Iterator[tuple[Config, RunningServer]]:
    config = make_config(database_url)
    with serving(create_app(config, run_worker=False)) as running:
        yield config, running


async def count(url: str, table: type) -> int:
    store = Store(Database(url))
    try:
        async with store.db.read() as session:
            return int(await session.scalar(select(func.count()).select_from(table)) or 0)
    finally:
        await store.db.dispose()


def listener(config: Config, running: RunningServer, token: str | None = None) -> str:
    return f"{running.url}/listener/acme/{token or config.listener_token('acme')}"


@pytest.mark.parametrize(("body", "status", "says"), [
    (b"not json", 400, "not JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (json.dumps({"EventTypeID": 13, "ChannelID": 504}).encode(), 400, "CampaignID is missing"),
    (json.dumps({"EventTypeID": "x", "CampaignID": 1}).encode(), 400, "EventTypeID must be"),
    (json.dumps({"EventTypeID": 99, "CampaignID": 1}).encode(), 400, "EventTypeID 99"),
    (json.dumps({"EventTypeID": 13, "CampaignID": 1}).encode(), 400, "ChannelID is missing"),
    (b"{" + b" " * 70_000 + b"}", 413, "bytes"),
])
def test_bad_notifications_get_a_4xx_that_says_why_and_store_nothing(
        service: tuple[Config, RunningServer], body: bytes, status: int, says: str) -> None:
    config, running = service
    answer = httpx.post(listener(config, running), content=body)
    assert answer.status_code == status
    assert says in answer.json()["error"]
    assert asyncio.run(count(config.server.database_url, Notification)) == 0


def test_a_wrong_token_is_404_and_stores_nothing(service: tuple[Config, RunningServer]) -> None:
    config, running = service
    good = {"EventTypeID": 13, "CampaignID": 5, "ChannelID": 504}
    assert httpx.post(listener(config, running, "0" * 32), json=good).status_code == 404
    assert httpx.post(f"{running.url}/listener/other/x", json=good).status_code == 404
    assert asyncio.run(count(config.server.database_url, Notification)) == 0


def test_a_repeated_notification_starts_the_campaign_once(
        service: tuple[Config, RunningServer]) -> None:
    config, running = service
    note = {"eventTypeId": 13, "campaignId": 5, "channelId": 504, "timeStamp": "x"}
    for _ in range(3):
        answer = httpx.post(listener(config, running), json=note)
        assert answer.status_code == 200, answer.text
    assert httpx.post(listener(config, running),
                      json={**note, "eventTypeId": 1}).status_code == 200

    async def handle() -> list[int]:
        built = await build_service(config)
        try:
            await handle_pending_notifications(built.contexts["acme"])
            campaigns = await built.store.campaigns_in("acme", CampaignStage.PULLING)
            return [c.campaign_id for c in campaigns]
        finally:
            await built.close()

    assert asyncio.run(handle()) == [5]


def callback_url(config: Config, running: RunningServer, send_id: int) -> str:
    signer = UrlSigner(config.server.secret(), running.url)
    return signer.callback_url("acme", send_id)


def body(*addresses: str) -> bytes:
    return encode_callback(CallbackBatch(MessageEvent.OPENED, 1_790_000_000,
                                         ChannelType.EMAIL, addresses))


def test_forged_or_altered_callbacks_are_403_and_stored_nowhere(
        service: tuple[Config, RunningServer]) -> None:
    config, running = service
    good = callback_url(config, running, 7)
    forged = good.replace("sig=", "sig=0")
    altered = good.replace("send=7", "send=8")
    unsigned = f"{running.url}/callbacks/acme?send=7"
    for url in (forged, altered, unsigned):
        assert httpx.post(url, content=body("a@example.com")).status_code == 403
    url = config.server.database_url
    assert asyncio.run(count(url, CallbackInbox)) == 0
    assert asyncio.run(count(url, CallbackProblem)) == 0


def test_signed_callbacks_are_stored_and_malformed_ones_kept_for_inspection(
        service: tuple[Config, RunningServer]) -> None:
    config, running = service
    url = callback_url(config, running, 7)
    answer = httpx.post(url, content=body("A@Example.com", "b@example.com"),
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["addresses"] == 2
    bad = httpx.post(url, content=b"event=exploded&when=1&email[0]=a@example.com")
    assert bad.status_code == 400
    assert "exploded" in bad.json()["error"]
    database = config.server.database_url
    assert asyncio.run(count(database, CallbackInbox)) == 1
    assert asyncio.run(count(database, CallbackProblem)) == 1


def test_a_callback_of_200000_addresses_is_taken(service: tuple[Config, RunningServer],
                                                 tmp_path: Path) -> None:
    config, running = service
    addresses = [f"customer{i}@example.com" for i in range(200_000)]
    answer = httpx.post(callback_url(config, running, 3), content=body(*addresses),
                        timeout=60)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["addresses"] == 200_000


def test_non_ascii_tokens_and_signatures_are_refused_not_crashed(
        service: tuple[Config, RunningServer]) -> None:
    config, running = service
    note = {"EventTypeID": 13, "CampaignID": 5, "ChannelID": 504}
    assert httpx.post(f"{running.url}/listener/acme/%C3%A9t%C3%A9",
                      json=note).status_code == 404
    url = callback_url(config, running, 7)
    assert httpx.post(url + "%C3%A9", content=body("a@example.com")).status_code == 403
    assert httpx.post(url.replace("send=7", "send=%D9%A7"),
                      content=body("a@example.com")).status_code == 403


def test_an_unsigned_callback_is_refused_before_its_body_is_read(
        service: tuple[Config, RunningServer]) -> None:
    _, running = service
    huge = b"x" * (40 * 1024 * 1024)  # over the body limit: refused for its signature first
    answer = httpx.post(f"{running.url}/callbacks/acme?send=1&sig=00", content=huge,
                        timeout=60)
    assert answer.status_code == 403
