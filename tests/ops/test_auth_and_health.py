"""/ui and /metrics need the admin token (or, without one, a request from this machine);
/healthz and /readyz answer anyone."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from optibridge.service.app import create_app
from optibridge.service.auth import COOKIE
from optibridge.serving import serving
from tests.ops.conftest import small_config

TOKEN = "admin-token-0123456789"


class FromHost:
    """The app as a caller at ``host`` reaches it: a real server on loopback can only be
    called from 127.0.0.1, so the peer address is set here, as a proxy-less network would."""

    def __init__(self, app: ASGIApp, host: str) -> None:
        self.app, self.host = app, host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "client": (self.host, 50000)}
        await self.app(scope, receive, send)


@contextmanager
def client(tmp_path: Path, host: str = "192.0.2.10", **server: str) -> Iterator[httpx.Client]:
    """The service on a real loopback server, called as if from ``host``."""
    app = create_app(small_config(tmp_path, **server), run_worker=False)
    with serving(FromHost(app, host)) as running, httpx.Client(
            base_url=running.url, follow_redirects=False) as test:
        yield test


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[httpx.Client]:
    with client(tmp_path, admin_token_env="T") as test:
        yield test


@pytest.mark.parametrize("path", ["/ui", "/metrics"])
def test_without_the_token_the_answer_is_401(guarded: httpx.Client, path: str) -> None:
    assert guarded.get(path).status_code == 401
    assert guarded.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert guarded.get(path, params={"token": "wrong"}).status_code == 401


@pytest.mark.parametrize("path", ["/ui", "/metrics"])
def test_a_bearer_token_opens(guarded: httpx.Client, path: str) -> None:
    response = guarded.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200


def test_a_token_in_the_query_sets_a_cookie_and_leaves_the_address_bar(
        guarded: httpx.Client) -> None:
    response = guarded.get("/ui", params={"token": TOKEN, "x": "1"})
    assert response.status_code == 303
    assert "token" not in response.headers["location"]
    assert response.headers["location"].endswith("/ui?x=1")
    cookie = response.cookies[COOKIE]
    assert TOKEN not in cookie
    assert "httponly" in response.headers["set-cookie"].lower()
    page = guarded.get("/ui")  # the client keeps the cookie
    assert page.status_code == 200 and "Tenants" in page.text
    guarded.cookies.clear()
    guarded.cookies.set(COOKIE, "forged", domain="127.0.0.1")
    assert guarded.get("/ui").status_code == 401


def test_even_localhost_needs_the_token_when_one_is_configured(tmp_path: Path) -> None:
    with client(tmp_path, host="127.0.0.1", admin_token_env="T") as local:
        assert local.get("/ui").status_code == 401


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_without_a_token_localhost_is_served(tmp_path: Path, host: str) -> None:
    with client(tmp_path, host=host) as local:
        assert local.get("/ui").status_code == 200
        assert local.get("/metrics").status_code == 200


def test_without_a_token_other_hosts_are_refused(tmp_path: Path) -> None:
    with client(tmp_path, host="10.1.2.3") as remote:
        assert remote.get("/ui").status_code == 403
        assert remote.get("/metrics").status_code == 403
        assert remote.get("/healthz").status_code == 200


def test_without_a_token_a_request_relayed_by_a_local_proxy_is_refused(
        tmp_path: Path) -> None:
    with client(tmp_path, host="127.0.0.1") as local:
        relayed = {"X-Forwarded-For": "203.0.113.9"}
        assert local.get("/ui", headers=relayed).status_code == 403
        assert local.get("/metrics", headers={"Forwarded": "for=203.0.113.9"}
                         ).status_code == 403


def test_an_empty_status_page_renders(tmp_path: Path) -> None:
    with client(tmp_path, host="127.0.0.1") as local:
        page = local.get("/ui")
    assert "No campaign yet." in page.text and "acme" in page.text


def test_probes_need_no_token(guarded: httpx.Client) -> None:
    assert guarded.get("/healthz").text == "ok"
    ready = guarded.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True}


def test_readyz_fails_when_migrations_are_not_current(tmp_path: Path) -> None:
    with client(tmp_path) as test:
        database = sqlite3.connect(tmp_path / "ops.db")
        database.execute("UPDATE alembic_version SET version_num = '0001'")
        database.commit()
        database.close()
        ready = test.get("/readyz")
        assert ready.status_code == 503
        assert ready.json() == {"ready": False, "database": "migrations are not current"}
        assert test.get("/healthz").status_code == 200  # alive, only not ready


def test_readyz_fails_when_the_database_is_unreachable(tmp_path: Path) -> None:
    with client(tmp_path) as test:
        (tmp_path / "ops.db").unlink()
        (tmp_path / "ops.db").mkdir()  # a directory: SQLite cannot open it
        ready = test.get("/readyz")
    assert ready.status_code == 503 and ready.json()["ready"] is False
