"""Malformed input on every endpoint gets a 4xx that names the problem, never a 500 and
never a dropped connection (the next request on the same connection is answered)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from optibridge.config import Config
from optibridge.service.app import create_app
from optibridge.serving import RunningServer, serving
from tests.service.test_endpoints import callback_url, make_config

Running = tuple[Config, RunningServer, httpx.Client]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    database = f"sqlite:///{tmp_path_factory.mktemp('no5xx') / 'o.db'}"
    config = make_config(database)
    with serving(create_app(config, run_worker=False)) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        yield config, server, client


def _listener(config: Config) -> str:
    return f"/listener/acme/{config.listener_token('acme')}"


def _triggered(config: Config) -> str:
    return f"/triggered/acme/{config.listener_token('acme')}"


def _answered(client: httpx.Client, path: str, body: bytes) -> httpx.Response:
    """POST ``body``, then check the same kept-alive connection still answers."""
    answer = client.post(path, content=body, headers={"content-type": "application/json"})
    assert answer.status_code < 500, (body[:200], answer.status_code, answer.text[:300])
    if answer.status_code >= 400:
        assert answer.json()["error"], answer.text
    assert client.get("/healthz").status_code == 200
    return answer


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                               max_size=4),
    max_leaves=20)
field_names = st.sampled_from(["EventTypeID", "CampaignID", "ChannelID", "eventtypeid",
                               "campaignId", "TemplateID", "CustomerID", "Personalization",
                               "RecipientEmail", "ActionID"])
notifications = st.dictionaries(field_names, json_values | st.integers(-2**70, 2**70),
                                max_size=6)
NASTY = [
    b"[" * 100_000 + b"]" * 100_000,  # RecursionError in json.loads
    b'{"EventTypeID": 13, "CampaignID": 1e400, "ChannelID": 504}',  # OverflowError in int()
    b'{"EventTypeID": 13, "CampaignID": 99999999999999999999, "ChannelID": 504}',
    b'{"EventTypeID": 13, "CampaignID": "9223372036854775808", "ChannelID": 504}',
    b'{"EventTypeID": 13, "CampaignID": 5, "ChannelID": 99999999999}',
    b'{"EventTypeID": 13, "CampaignID": 5, "ChannelID": 504, "x": "a\\u0000b"}',
    b'{"EventTypeID": 13, "CampaignID": 5, "ChannelID": 504, "x\\u0000": 1}',
    b'{"EventTypeID": 13, "CampaignID": ' + b"9" * 5000 + b', "ChannelID": 504}',
    b'{"EventTypeID": NaN, "CampaignID": Infinity}',
    b'{"EventTypeID": 13, "CampaignID": 5, "ChannelID": 504, "x": "\\ud800"}',
    b"\xff\xfe",
]


@pytest.mark.parametrize("body", NASTY, ids=range(len(NASTY)))
def test_nasty_json_is_a_4xx_on_the_listener_and_triggered(running: Running,
                                                           body: bytes) -> None:
    config, _, client = running
    for path in (_listener(config), _triggered(config)):
        _answered(client, path, body)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(notifications)
@example({"EventTypeID": 13, "CampaignID": 2**64, "ChannelID": 504})
@example({"EventTypeID": 1, "CampaignID": -(2**63) - 1})
def test_random_notifications_never_get_a_5xx(running: Running, data: dict[str, object]
                                             ) -> None:
    config, _, client = running
    body = json.dumps(data).encode()
    _answered(client, _listener(config), body)
    _answered(client, _triggered(config), body)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_never_get_a_5xx(running: Running, body: bytes) -> None:
    config, server, client = running
    for path in (_listener(config), _triggered(config)):
        _answered(client, path, body)
    signed = callback_url(config, server, 7).removeprefix(server.url)
    _answered(client, signed, body)


@pytest.mark.parametrize("path", ["/ui", "/metrics", "/readyz", "/healthz", "/ui?x=%ff",
                                  "/ui/campaigns/abc", "/callbacks/acme?send=x&sig=%00"])
def test_other_endpoints_never_get_a_5xx(running: Running, path: str) -> None:
    _, _, client = running
    answer = client.get(path)
    assert answer.status_code < 500, (path, answer.text[:300])
    answer = client.post(path, content=b"\x00" * 100)
    assert answer.status_code < 500, (path, answer.text[:300])
    assert client.get("/healthz").status_code == 200
