"""The OpenAPI document covers every route the service serves, and is served as it is."""

from __future__ import annotations

from pathlib import Path

import httpx
from starlette.routing import Mount, Route

from optibridge.service.app import create_app
from optibridge.service.openapi import document
from optibridge.serving import serving
from tests.ops.conftest import small_config


def served_operations(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(small_config(tmp_path), run_worker=False)
    found = set()
    for route in app.routes:
        if isinstance(route, Route):
            path = route.path.replace(":int}", "}")
            found |= {(method, path) for method in route.methods or () if method != "HEAD"}
        elif isinstance(route, Mount):
            found.add(("GET", f"{route.path}/{{path}}"))
    return found


def test_every_route_is_in_the_document_and_nothing_else(tmp_path: Path) -> None:
    documented = {(method.upper(), path) for path, item in document()["paths"].items()
                  for method in item}
    assert served_operations(tmp_path) == documented


def test_the_service_serves_the_document(tmp_path: Path) -> None:
    app = create_app(small_config(tmp_path), run_worker=False)
    with serving(app) as running:
        answer = httpx.get(f"{running.url}/openapi.json")
        assert answer.status_code == 200 and answer.json() == document()
        # Starlette's own refusals are JSON like ours.
        missing = httpx.get(f"{running.url}/no/such/path")
        assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
        wrong = httpx.get(f"{running.url}/listener/acme/x")
        assert wrong.status_code == 405 and "error" in wrong.json()
