"""EventTypeID 14: audiences from encrypted Avro files on (an emulated) Google Cloud Storage,
read by the real ``google-cloud-storage`` client, through the same pipeline as the REST pull."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from optibridge.config import Config
from optibridge.demo import EMAIL_CAMPAIGN, EMAIL_CHANNEL, Rehearsal
from optibridge.pipeline.listener import handle_pending_notifications
from optibridge.sandbox.gcs import GcsEmulator, create_app
from optibridge.service.app import create_app as service_app
from optibridge.service.assembly import build_service
from optibridge.serving import RunningServer, serving
from optibridge.store import Database, Store
from optibridge.store.schema import Engagement, Notification
from tests.pipeline.conftest import assert_reconciled, run_to_the_end
from tests.service.test_endpoints import count, listener, make_config

KEY = base64.b64encode(bytes(range(32))).decode()


def payload(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "EventTypeID": 14, "TimeStamp": "2022-07-19 08:54", "CampaignID": 77,
        "EngagementID": 9, "TenantID": 1000, "BucketName": "optigration-external-eu",
        "DecryptionKey": KEY, "CustomersFolderPath": "1000/9/customers",
        "MetadataFilePath": "1000/9/metadata.json", "ChannelID": 504}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


# ---- the GCS emulator, as the real client sees it ------------------------------------------
def gcs_client(url: str) -> storage.Client:
    """The real client, without credentials, against the emulator at ``url``."""
    # google-auth leaves AnonymousCredentials.__init__ unannotated.
    credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
    return storage.Client(project="test", credentials=credentials,
                          client_options={"api_endpoint": url})


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[tuple[GcsEmulator, storage.Client]]:
    gcs = GcsEmulator(tmp_path / "gcs")
    with serving(create_app(gcs)) as running:
        yield gcs, gcs_client(running.url)


def test_the_emulator_serves_a_csek_object_only_with_its_key(
        emulator: tuple[GcsEmulator, storage.Client]) -> None:
    gcs, client = emulator
    gcs.put("b", "dir/f.avro", b"0123456789" * 100, key=KEY)
    bucket = client.bucket("b")
    assert bucket.blob("dir/f.avro", encryption_key=base64.b64decode(KEY)
                       ).download_as_bytes() == b"0123456789" * 100
    assert bucket.blob("dir/f.avro", encryption_key=base64.b64decode(KEY)
                       ).download_as_bytes(start=5, end=14) == b"5678901234"
    refusals = {None: "resourceIsEncryptedWithCustomerEncryptionKey",
                os.urandom(32): "customerEncryptionKeyIsIncorrect"}
    for key, reason in refusals.items():
        with pytest.raises(exceptions.BadRequest) as refused:
            bucket.blob("dir/f.avro", encryption_key=key).download_as_bytes()
        assert reason in str(refused.value)
    with pytest.raises(exceptions.NotFound):
        bucket.blob("dir/other.avro", encryption_key=base64.b64decode(KEY)).download_as_bytes()
    assert [d.status for d in gcs.downloads()] == [200, 200, 400, 400, 404]


# ---- intake -----------------------------------------------------------------------------
def files_config(database_url: str) -> Config:
    config = make_config(database_url)
    tenant = config.tenants["acme"]
    files = tenant.files.model_copy(update={"optimove_tenant_id": 1000})
    return config.model_copy(update={"tenants": {"acme": tenant.model_copy(
        update={"files": files})}})


@pytest.fixture
def service(database_url: str) -> Iterator[tuple[Config, RunningServer]]:
    config = files_config(database_url)
    with serving(service_app(config, run_worker=False)) as running:
        yield config, running


@pytest.mark.parametrize(("changes", "says"), [
    ({"DecryptionKey": None}, "DecryptionKey is missing"),
    ({"DecryptionKey": "not base64!"}, "DecryptionKey is not base64"),
    ({"DecryptionKey": base64.b64encode(b"short").decode()}, "32 bytes"),
    ({"BucketName": ""}, "BucketName is missing"),
    ({"CustomersFolderPath": None}, "CustomersFolderPath is missing"),
    ({"MetadataFilePath": 5}, "MetadataFilePath is missing"),
    ({"CampaignID": None}, "CampaignID is missing"),
    ({"ChannelID": None}, "ChannelID is missing"),
    ({"TenantID": 2000}, "TenantID 2000 is not this tenant's"),
])
def test_a_malformed_or_foreign_event_14_gets_a_4xx_naming_the_field(
        service: tuple[Config, RunningServer], changes: dict[str, object], says: str) -> None:
    config, running = service
    answer = httpx.post(listener(config, running), json=payload(**changes))
    assert answer.status_code == 400
    assert says in answer.json()["error"]
    assert asyncio.run(count(config.server.database_url, Notification)) == 0


def test_event_14_is_recorded_then_opens_the_campaign_with_its_files_once(
        service: tuple[Config, RunningServer]) -> None:
    config, running = service
    for _ in range(2):
        answer = httpx.post(listener(config, running), json=payload())
        assert answer.status_code == 200, answer.text
    assert asyncio.run(count(config.server.database_url, Notification)) == 2

    async def handle() -> tuple[int, str | None]:
        built = await build_service(config)
        try:
            await handle_pending_notifications(built.contexts["acme"])
            campaign = await built.store.get_campaign("acme", 77, 504)
            assert campaign is not None
            engagement = await built.store.engagement_of(campaign.id)
            assert engagement is not None and engagement.decryption_key == KEY
            return (await count(config.server.database_url, Engagement),
                    engagement.bucket)
        finally:
            await built.close()

    assert asyncio.run(handle()) == (1, "optigration-external-eu")


# ---- the whole flow ---------------------------------------------------------------------
def files_rehearsal(tmp_path: Path, database_url: str, customers: int, file_size: int,
                    **options: object) -> Rehearsal:
    return Rehearsal(customers=customers, workdir=tmp_path, database_url=database_url,
                     callback_window=0.3, audience_source="files", file_size=file_size,
                     **options)  # type: ignore[arg-type]


def assert_each_customer_executed_once(run: Rehearsal) -> None:
    truth = run.platform.ground_truth()
    sent = Counter(address for _, event, address, _ in truth if event == "submitted")
    assert sent and max(sent.values()) == 1
    with_address = [c for c in run.audience if c.address and c.channel_id == EMAIL_CHANNEL]
    assert len(sent) == len(with_address)


def test_an_event_14_campaign_over_several_files_runs_end_to_end(
        tmp_path: Path, database_url: str) -> None:
    run = files_rehearsal(tmp_path, database_url, customers=4000, file_size=700)
    try:
        rows = run_to_the_end(run)
        assert_each_customer_executed_once(run)
        assert run.gcs is not None
        files = [name for p in run.published for name in p.customer_files]
        assert len(files) >= 6
        reads = Counter(d.name for d in run.gcs.downloads() if d.status == 200)
        assert all(reads[name] == 1 for name in files), reads
    finally:
        run.close()
    assert_reconciled(rows)


@pytest.mark.slow
def test_a_100000_customer_event_14_campaign_executes_and_reports_exactly_once(
        tmp_path: Path, database_url: str) -> None:
    run = files_rehearsal(tmp_path, database_url, customers=100_000, file_size=25_000)
    try:
        rows = run_to_the_end(run, timeout=900, sample=20)
        assert_each_customer_executed_once(run)
    finally:
        run.close()
    assert_reconciled(rows)


# ---- faults -----------------------------------------------------------------------------
async def _problems(url: str) -> list[str]:
    store = Store(Database(url))
    try:
        return [p.message for p in await store.recent_problems(50)]
    finally:
        await store.db.dispose()


async def _scalar(url: str, sql: str) -> object:
    from sqlalchemy import text

    store = Store(Database(url))
    try:
        async with store.db.read() as session:
            return (await session.execute(text(sql))).scalar()
    finally:
        await store.db.dispose()


def wait_until(what: str, check: Callable[[], bool], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {within:.0f} s")
        time.sleep(0.2)


def _email_files(run: Rehearsal) -> list[str]:
    return list(run.published[0].customer_files)


FAULTS = ["wrong key", "missing file", "truncated file"]


@pytest.mark.parametrize("fault", FAULTS)
def test_an_unreadable_file_holds_its_campaign_with_a_problem_naming_it(
        tmp_path: Path, database_url: str, fault: str) -> None:
    run = files_rehearsal(tmp_path, database_url, customers=3000, file_size=600)
    try:
        run.start_sandboxes()
        run.register_and_load()
        assert run.gcs is not None
        email = run.published[0]
        target = _email_files(run)[1]  # the second file: the first is stored by then
        saved = (run.gcs.root / email.bucket / target).read_bytes()
        if fault == "wrong key":
            other = base64.b64encode(os.urandom(32)).decode()
            run.published[0] = dataclasses.replace(
                email, payload={**email.payload, "DecryptionKey": other})
            target = email.metadata_file  # the first file read with the key
        elif fault == "missing file":
            run.gcs.remove(email.bucket, target)
        else:
            run.gcs.truncate(email.bucket, target, keep=0.6)
        run.start_service()
        assert run.fire() == [200, 200]
        url = run.config.server.database_url
        wait_until("a problem naming the file", lambda: any(
            target in message for message in asyncio.run(_problems(url))))
        # The other campaign (SMS) goes on; the email campaign sends nobody.
        wait_until("the SMS send is done", lambda: asyncio.run(_scalar(
            url, "SELECT count(*) FROM send WHERE state = 'done'")) == 1)
        assert asyncio.run(_scalar(url, f"SELECT state FROM campaign WHERE campaign_id = "
                                        f"{EMAIL_CAMPAIGN}")) == "pulling"
        assert not [a for _, _, a, _ in run.platform.ground_truth() if "@" in a]
        problem = next(m for m in asyncio.run(_problems(url)) if target in m)
        assert f"gs://{email.bucket}/{target}" in problem
        assert "nothing is sent" in problem
        if fault == "missing file":  # Optimove writes it after all: the campaign resumes
            run.gcs.put(email.bucket, target, saved, key=email.key)
            asyncio.run(run.wait_settled(120))
            run.stop_service()
            rows = asyncio.run(run.reconcile(sample=5))
            assert_reconciled(rows)
            assert_each_customer_executed_once(run)
    finally:
        run.close()


def test_kill_minus_nine_during_the_file_reads_repeats_at_most_one_file(
        tmp_path: Path, database_url: str) -> None:
    run = files_rehearsal(tmp_path, database_url, customers=6000, file_size=800,
                          service_mode="process", lease_ttl=6.0, callback_margin=15.0,
                          rate_limit=(50, 1.0))
    try:
        run.start_sandboxes()
        run.register_and_load()
        assert run.gcs is not None
        email = run.published[0]
        files = _email_files(run)
        slow = files[3]
        run.gcs.slow_down(email.bucket, slow, 3.0)
        run.start_service()
        assert run.fire() == [200, 200]
        wait_until("the slow file's download began", lambda: any(
            d.name == slow for d in run.gcs.downloads()))  # type: ignore[union-attr]
        time.sleep(1.0)
        run.kill(run.service_port)
        stored = asyncio.run(_scalar(run.config.server.database_url,
                                     f"SELECT pulled FROM campaign WHERE campaign_id = "
                                     f"{EMAIL_CAMPAIGN}"))
        run.start_process(run.service_port)
        asyncio.run(run.wait_settled(300))
        run.stop_service()
        rows = asyncio.run(run.reconcile(sample=10))
        reads = Counter(d.name for d in run.gcs.downloads() if d.status == 200)
        assert_each_customer_executed_once(run)
    finally:
        run.close()
    assert_reconciled(rows)
    emails = sum(1 for c in run.audience if c.channel_id == EMAIL_CHANNEL)
    assert 0 < int(str(stored)) < emails  # killed in the middle of the reads
    repeated = [name for name in files if reads[name] > 1]
    assert repeated == [slow], reads
    assert all(reads[name] == 1 for name in files if name != slow)
    assert reads[slow] == 2


def test_the_metadata_file_is_parsed_as_optimove_writes_it() -> None:
    from optibridge.optimove.engagement import parse_metadata

    metadata = parse_metadata("m", json.dumps({
        "CampaignID": 1, "ChannelID": 504, "TemplateID": 3, "NumberOfFiles": 2,
        "NumberOfCustomers": 10, "ScheduledTime": "2024-03-30T09:00:00Z",
        "CampaignType": "No Control", "IsMultiChannel": False}).encode())
    assert metadata.scheduled_time == dt.datetime(2024, 3, 30, 9, 0)
    assert metadata.number_of_files == 2


def test_listeners_webhook_prints_the_url_for_optimoves_webhook_configuration(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tomli_w
    from typer.testing import CliRunner

    from optibridge.cli import app

    config = make_config(f"sqlite:///{tmp_path / 'x.db'}")
    path = tmp_path / "optibridge.toml"
    path.write_text(tomli_w.dumps({
        "server": {"public_url": "https://bridge.example", "signing_secret_env": "SECRET"},
        "tenants": {"acme": {
            "optimove_url": "http://127.0.0.1:9", "api_key_env": "OPTIMOVE_KEY",
            "channels": {"504": {"type": "email", "address_attribute": "Email"}},
            "platform": {"base_url": "http://127.0.0.1:9", "api_key_env": "PLATFORM_KEY",
                         "bounce_domain": 1}}}}))
    for name, value in {"SECRET": "s" * 32, "OPTIMOVE_KEY": "k", "PLATFORM_KEY": "p"}.items():
        monkeypatch.setenv(name, value)
    done = CliRunner().invoke(app, ["listeners", "webhook", "-c", str(path)])
    assert done.exit_code == 0, done.output
    assert done.output.strip() == (f"https://bridge.example/listener/acme/"
                                   f"{config.listener_token('acme')}")


def test_the_sandbox_publishes_event_14_over_its_admin_api(
        service: tuple[Config, RunningServer], tmp_path: Path) -> None:
    from optibridge.sandbox.optimove.files import EngagementPublisher, create_engagement_app

    config, running = service
    publisher = EngagementPublisher(GcsEmulator(tmp_path / "gcs"))
    with serving(create_engagement_app(publisher)) as files:
        answer = httpx.post(f"{files.url}/sandbox/engagements", json={
            "CampaignID": 77, "ChannelID": 504, "TemplateID": 3,
            "ScheduledTime": "2026-11-22T10:00:00Z", "Fields": ["Email"], "FileSize": 2,
            "Customers": [{"CustomerID": f"C{i}", "Email": f"c{i}@example.com"}
                          for i in range(5)],
            "WebhookURL": listener(config, running)})
        assert answer.status_code == 200, answer.text
        sent = answer.json()
        assert sent["webhook_status"] == 200
        assert [name.rsplit("/", 1)[1] for name in sent["customer_files"]] == [
            "customers_file001.deflate.avro", "customers_file002.deflate.avro",
            "customers_file003.deflate.avro"]
        client = gcs_client(files.url)
        key = base64.b64decode(sent["payload"]["DecryptionKey"])
        metadata = json.loads(client.bucket(sent["payload"]["BucketName"]).blob(
            sent["metadata_file"], encryption_key=key).download_as_bytes())
        assert (metadata["NumberOfFiles"], metadata["NumberOfCustomers"]) == (3, 5)
        faulted = httpx.post(f"{files.url}/sandbox/engagements/faults", json={
            "File": sent["customer_files"][2], "Fault": "missing"})
        assert faulted.status_code == 200
        assert httpx.post(f"{files.url}/sandbox/engagements/faults", json={
            "File": "x", "Fault": "melted"}).status_code == 400
    assert publisher.storage.find(publisher.bucket, sent["customer_files"][2]) is None
    assert asyncio.run(count(config.server.database_url, Notification)) == 1
