"""PlatformClient against the sandbox, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from optibridge.config import PlatformConfig
from optibridge.domain import ChannelType
from optibridge.platform import (
    ALLOWED_MOVES,
    CampaignState,
    Contact,
    PlatformAuthError,
    PlatformClient,
    PlatformNotFound,
    PlatformOutcomeUnknown,
    PlatformRequestRejected,
    PlatformServerError,
    PlatformUnavailable,
    StateMoveRefused,
)
from optibridge.retry import RetryPolicy
from optibridge.sandbox.platform import PlatformFaults, PlatformSandbox
from optibridge.serving import RunningServer
from tests.platform.test_sandbox_contract import seed_moves

LATER = datetime.now(UTC) + timedelta(days=1)
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


async def _draft(client: PlatformClient, sandbox: PlatformSandbox) -> tuple[int, int]:
    """A DRAFT campaign with one email payload; (campaign id, template id)."""
    list_id = await client.create_list("audience")
    campaign = await client.create_campaign("c", list_id, LATER, "http://127.0.0.1:9/cb?t=1")
    template = sandbox.add_template("welcome", ChannelType.EMAIL, "<p>Hi {{name}}</p>")
    await client.attach_payload(campaign.id, ChannelType.EMAIL, template)
    return campaign.id, template


async def test_lists_and_contacts(client: PlatformClient, sandbox: PlatformSandbox) -> None:
    list_id = await client.create_list("people")
    contacts = [Contact(email="a@example.com", fields={"name": "Ann"}),
                Contact(telephone="+4915112345678"),
                Contact(email="a@example.com", fields={"city": "Oslo"})]
    result = await client.add_contacts(list_id, contacts)
    assert result.added == 3 and result.rejected == ()
    stored = sandbox.contacts(list_id)
    # re-adding an address updates its fields instead of adding a second contact
    assert [(c.email, c.telephone, dict(c.fields)) for c in stored] == [
        ("a@example.com", None, {"name": "Ann", "city": "Oslo"}),
        (None, "+4915112345678", {})]
    await client.delete_list(list_id)
    with pytest.raises(PlatformNotFound, match="delete list"):
        await client.delete_list(list_id)


async def test_chunked_import_reindexes_rejected_rows(api_key: str,
        platform_server: RunningServer, sandbox: PlatformSandbox) -> None:
    bad = {3, 9_999, 10_000, 10_001, 17_345, 24_999}
    contacts = [Contact(email=f"user{i}@example.com") if i not in bad
                else Contact(email=f"broken-{i}") if i % 2 else Contact(telephone="12345")
                for i in range(25_000)]
    async with PlatformClient(platform_server.url, api_key, bounce_domain=1,
                              import_chunk=10_000) as client:
        list_id = await client.create_list("big")
        result = await client.add_contacts(list_id, contacts)
    assert result.added == 25_000 - len(bad)
    assert {r.index for r in result.rejected} == bad
    for row in result.rejected:  # each error is about the row at that index
        shown = contacts[row.index].email or contacts[row.index].telephone
        assert shown is not None and shown in row.error
    assert len(sandbox.contacts(list_id)) == 25_000 - len(bad)


async def test_campaign_lifecycle(client: PlatformClient, sandbox: PlatformSandbox) -> None:
    list_id = await client.create_list("audience")
    when = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    created = await client.create_campaign("spring", list_id, when, "http://h/cb?a=1&b=%20")
    assert (created.state, created.when, created.list_id, created.domain) == (
        CampaignState.DRAFT, int(when.timestamp()), list_id, 1)
    stored = sandbox.campaign(created.id)
    assert stored.event_callback == "http://h/cb?a=1&b=%20" and stored.domain == 1
    template = sandbox.add_template("t", ChannelType.SMS, "Hi {{name}}")
    await client.attach_payload(created.id, ChannelType.SMS, template)
    assert [p.template for p in sandbox.campaign(created.id).payloads] == [template]
    moved = await client.move_campaign(created.id, CampaignState.SCHEDULED,
                                       CampaignState.DRAFT)
    assert moved.state is CampaignState.SCHEDULED
    assert (await client.get_campaign(created.id)).state is CampaignState.SCHEDULED
    await client.delete_campaign(created.id)
    with pytest.raises(PlatformNotFound, match=f"get campaign {created.id}"):
        await client.get_campaign(created.id)


async def test_templates_and_domains_page_through(
        client: PlatformClient, sandbox: PlatformSandbox) -> None:
    ids = [sandbox.add_template(f"t{i}", ChannelType.EMAIL if i % 3 else ChannelType.SMS,
                                f"body {i}") for i in range(1_205)]
    templates = await client.list_templates()
    assert [t.id for t in templates] == ids  # 1,205 items need two pages of 1,000
    sms = await client.list_templates(ChannelType.SMS)
    assert {t.id for t in sms} == {ids[i] for i in range(0, 1_205, 3)}
    one = await client.get_template(ids[4])
    assert (one.name, one.body, one.type) == ("t4", "body 4", ChannelType.EMAIL)
    assert templates[4].body is None  # listings carry no body
    domains = await client.list_domains()
    assert [(d.id, d.bouncing) for d in domains] == [(1, True), (2, False)]
    with pytest.raises(PlatformNotFound):
        await client.get_template(999_999)


@pytest.mark.parametrize("current", list(CampaignState))
async def test_forbidden_moves_refused_locally(current: CampaignState) -> None:
    requests: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(500)

    forbidden = [t for t in CampaignState if t not in ALLOWED_MOVES[current]]
    async with PlatformClient("http://platform.invalid", "k",
                              transport=httpx.MockTransport(record)) as client:
        for target in forbidden:
            with pytest.raises(StateMoveRefused, match=f"not allowed from {current.value}"):
                await client.move_campaign(1, target, current)
    assert requests == []  # nothing was sent
    assert len(forbidden) == len(CampaignState) - len(ALLOWED_MOVES[current])


async def test_sandbox_refuses_moves_with_409(
        client: PlatformClient, sandbox: PlatformSandbox) -> None:
    list_id = await client.create_list("l")
    bare = await client.create_campaign("no payload", list_id, LATER, "http://h/cb")
    await client.move_campaign(bare.id, CampaignState.SCHEDULED)
    with pytest.raises(StateMoveRefused, match="needs at least one payload") as refused:
        await client.move_campaign(bare.id, CampaignState.READY)
    assert refused.value.status == 409
    campaign_id, template = await _draft(client, sandbox)
    refusals = {}
    for target in CampaignState:  # from DRAFT, without local knowledge of the state
        if target is CampaignState.DRAFT or ("DRAFT", target.value) in seed_moves():
            continue
        with pytest.raises(StateMoveRefused) as refused:
            await client.move_campaign(campaign_id, target)
        refusals[target] = refused.value.status
    assert refusals == {CampaignState.READY: 409, CampaignState.SENDING: 409,
                        CampaignState.DONE: 409, CampaignState.ERROR: 409}
    await client.move_campaign(campaign_id, CampaignState.SCHEDULED)
    ready = await client.move_campaign(campaign_id, CampaignState.READY)
    assert ready.state is CampaignState.READY
    with pytest.raises(StateMoveRefused, match="only while DRAFT or SCHEDULED"):
        await client.attach_payload(campaign_id, ChannelType.EMAIL, template)
    with pytest.raises(StateMoveRefused, match="cannot move from READY to DRAFT"):
        await client.move_campaign(campaign_id, CampaignState.DRAFT)


async def test_wrong_key_is_401(platform_server: RunningServer) -> None:
    async with PlatformClient(platform_server.url, "wrong-key-xyz", retry=FAST_RETRY) as client:
        with pytest.raises(PlatformAuthError) as error:
            await client.create_list("x")
    assert error.value.status == 401
    assert "wrong-key-xyz" not in str(error.value)
    assert "create list" in str(error.value)


async def test_validation_errors_name_the_parameter(api_key: str,
        client: PlatformClient, platform_server: RunningServer) -> None:
    with pytest.raises(PlatformRequestRejected, match=r"400: list: no list 4242"):
        await client.create_campaign("c", 4242, LATER, "http://h/cb")
    list_id = await client.create_list("l")
    async with PlatformClient(platform_server.url, api_key, bounce_domain=2) as not_bouncing:
        with pytest.raises(PlatformRequestRejected, match="not a bouncing domain"):
            await not_bouncing.create_campaign("c", list_id, LATER, "http://h/cb")
    async with httpx.AsyncClient(base_url=platform_server.url,
                                 headers={"Authorization": f"Bearer {api_key}"}) as raw:
        answer = await raw.post("/campaign", data={"name": "c", "domain": "1",
                                                   "list": str(list_id), "when": "tomorrow"})
        assert answer.status_code == 400 and answer.json()["error"].startswith("when:")
        iso = await raw.post("/campaign", data={"name": "c", "domain": "1",
                                                "list": str(list_id),
                                                "when": "2031-01-02T03:04:05Z"})
        assert iso.json()["when"] == int(datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp())
        moved = await raw.put(f"/campaign/{iso.json()['id']}", data={"list": "1"})
        assert moved.status_code == 400 and "cannot be changed" in moved.json()["error"]
        page = await raw.get("/template", params={"limit": "1001"})
        assert page.status_code == 400 and page.json()["error"].startswith("limit:")
        big = await raw.post(f"/list/{list_id}/contacts",
                             json={"contacts": [{"email": "a@b.co"}] * 10_001})
        assert big.status_code == 400 and "at most 10000" in big.json()["error"]


async def test_rate_limited_call_waits_for_retry_after(api_key: str,
        platform_server: RunningServer, sandbox: PlatformSandbox) -> None:
    sandbox.set_faults(PlatformFaults(api_rate_limit_rate=1.0, retry_after=1.0,
                                      api_faults_max=1))
    async with PlatformClient(platform_server.url, api_key,
                              retry=RetryPolicy(attempts=3, base_delay=0.01,
                                                max_delay=2.0)) as client:
        started = time.monotonic()
        list_id = await client.create_list("after a 429")
        elapsed = time.monotonic() - started
    assert elapsed >= 1.0
    assert sandbox.contacts(list_id) == []  # the list exists: the retry went through


async def test_server_errors_are_retried_then_raised(
        client: PlatformClient, sandbox: PlatformSandbox) -> None:
    list_id = await client.create_list("people")
    sandbox.set_faults(PlatformFaults(api_error_rate=1.0, api_faults_max=2))
    assert (await client.get_list(list_id)).name == "people"
    sandbox.set_faults(PlatformFaults(api_error_rate=1.0))
    with pytest.raises(PlatformServerError, match=r"get campaign 1: 500"):
        await client.get_campaign(1)


async def test_a_create_is_never_retried_once_it_may_have_been_applied(
        client: PlatformClient, sandbox: PlatformSandbox) -> None:
    # A 500 may come after the platform applied the create: a retry could make two.
    sandbox.set_faults(PlatformFaults(api_error_rate=1.0, api_faults_max=1))
    with pytest.raises(PlatformOutcomeUnknown, match="create list: 500"):
        await client.create_list("after a 500")
    # Applied, then the answer lost (the connection drops mid-answer): one list, not two.
    sandbox.set_faults(PlatformFaults(lost_answer_rate=1.0, lost_answers_max=2))
    with pytest.raises(PlatformOutcomeUnknown, match="create list: no answer"):
        await client.create_list("lost")
    list_id = max(sandbox.lists())
    assert sandbox.lists()[list_id] == "lost" and list(sandbox.lists().values()) == ["lost"]
    with pytest.raises(PlatformOutcomeUnknown, match="create campaign: no answer"):
        await client.create_campaign("c", list_id, LATER, "http://127.0.0.1:9/cb")
    assert [c.name for c in sandbox.campaigns()] == ["c"]
    # A 429 was not applied: that one is retried.
    sandbox.set_faults(PlatformFaults(api_rate_limit_rate=1.0, retry_after=0.01,
                                      api_faults_max=1))
    assert await client.create_list("after a 429") in sandbox.lists()


async def test_payload_is_not_retried_after_a_server_error(
        client: PlatformClient, sandbox: PlatformSandbox) -> None:
    campaign_id, template = await _draft(client, sandbox)
    sandbox.set_faults(PlatformFaults(api_error_rate=1.0, api_faults_max=1))
    with pytest.raises(PlatformOutcomeUnknown, match="attach email payload"):
        await client.attach_payload(campaign_id, ChannelType.EMAIL, template)
    assert len(sandbox.campaign(campaign_id).payloads) == 1  # only the first one


async def test_connection_refused_is_unavailable() -> None:
    from optibridge.serving import free_port

    async with PlatformClient(f"http://127.0.0.1:{free_port()}", "k",
                              retry=FAST_RETRY) as client:
        with pytest.raises(PlatformUnavailable, match="get campaign 3: no answer"):
            await client.get_campaign(3)


async def test_retried_move_that_already_landed_succeeds() -> None:
    calls: list[str] = []
    campaign = {"id": 5, "name": "c", "state": "READY", "when": 1, "list": 2, "domain": 1}

    def platform(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if request.method == "PUT" and len(calls) == 1:
            raise httpx.ReadTimeout("lost answer", request=request)  # the move did land
        if request.method == "PUT":
            return httpx.Response(409, json={"error": "state: cannot move from SENDING"})
        return httpx.Response(200, json={**campaign, "state": "SENDING"})

    async with PlatformClient("http://p.invalid", "k", retry=FAST_RETRY,
                              transport=httpx.MockTransport(platform)) as client:
        moved = await client.move_campaign(5, CampaignState.READY, CampaignState.SCHEDULED)
    assert moved.state is CampaignState.SENDING and calls == ["PUT", "PUT", "GET"]


async def test_from_config_uses_bounce_domain_and_key(api_key: str,
        platform_server: RunningServer, sandbox: PlatformSandbox,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_KEY_FOR_TEST", api_key)
    config = PlatformConfig(base_url=platform_server.url, api_key_env="PLATFORM_KEY_FOR_TEST",
                            bounce_domain=1)
    async with PlatformClient.from_config(config) as client:
        list_id = await client.create_list("from config")
        campaign = await client.create_campaign("c", list_id, LATER, "http://h/cb")
    assert sandbox.campaign(campaign.id).domain == 1
