"""Readiness reflects that writes fail: with the SQLite database unable to grow (a full
disk), /readyz is 503 and a callback gets a 503 to retry, never a 500."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

from optibridge.service.app import create_app
from optibridge.serving import serving
from tests.service.test_callback_door import DUE, _a_send
from tests.service.test_endpoints import callback_url, make_config


def test_readyz_is_503_while_the_disk_is_full(tmp_path: Path) -> None:
    config = make_config(f"sqlite:///{tmp_path / 'o.db'}")
    app = create_app(config, run_worker=False)
    with serving(app) as running:
        assert httpx.get(f"{running.url}/readyz").status_code == 200
        send_id = asyncio.run(_a_send(config.server.database_url))
        engines = app.state.service.store.db.write_engines

        def full(connection: Any) -> None:  # the file may not grow by one page
            connection.exec_driver_sql("PRAGMA max_page_count = 1")

        for engine in engines:
            event.listen(engine, "begin", full)
        many = "&".join(f"email[{i}]=c{i}@example.com" for i in range(20_000))
        body = f"event=opened&when={int(DUE.timestamp())}&{many}".encode()
        answer = httpx.post(callback_url(config, running, send_id), content=body)
        assert answer.status_code == 503, answer.text
        assert "database" in answer.json()["error"]
        ready = httpx.get(f"{running.url}/readyz")
        assert ready.status_code == 503, ready.text
        assert "writes fail" in ready.json()["database"]
        for engine in engines:
            event.remove(engine, "begin", full)

        def room(connection: Any) -> None:  # space again
            connection.exec_driver_sql("PRAGMA max_page_count = 1073741823")

        for engine in engines:
            event.listen(engine, "begin", room)
        assert httpx.get(f"{running.url}/readyz").status_code == 200
        assert httpx.post(callback_url(config, running, send_id),
                          content=body).status_code == 200
