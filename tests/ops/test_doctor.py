"""``optibridge doctor`` against the sandboxes: all fine, then each kind of mistake."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optibridge.cli import app
from optibridge.cli.common import console
from optibridge.cli.doctor import (
    check_admin_token,
    check_database,
    check_public_scheme,
    run_checks,
)
from optibridge.config import load_config, parse_config
from optibridge.demo import Rehearsal
from optibridge.serving import free_port


async def test_everything_fine_on_the_running_service(settled: Rehearsal) -> None:
    checks = await run_checks(settled.config)
    assert [c.name for c in checks] == ["database", "tenant demo: Optimove key",
                                        "tenant demo: platform key", "tenant demo: read-back",
                                        "tenant demo: reporting",
                                        "admin token", "public URL scheme", "public URL"]
    assert all(c.ok for c in checks), checks
    # The demo serves plain HTTP on loopback: fine, but said.
    scheme = next(c for c in checks if c.name == "public URL scheme")
    assert scheme.warn and "rehearsal on this machine" in scheme.detail


async def test_wrong_keys_a_dead_url_and_a_missing_database(settled: Rehearsal,
                                                            tmp_path: Path) -> None:
    data = settled.config_data()
    data["server"]["public_url"] = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "never-migrated.db").touch()
    data["server"]["database_url"] = f"sqlite:///{tmp_path / 'never-migrated.db'}"
    data["tenants"]["demo"]["platform"]["bounce_domain"] = 999
    environ = {**settled.environment(), "OPTIBRIDGE_DEMO_OPTIMOVE_KEY": "wrong-key-123",
               "OPTIBRIDGE_DEMO_PLATFORM_KEY": "wrong-key-456"}
    checks = {c.name: c for c in await run_checks(parse_config(data, environ=environ))}
    # Every check fails but the reporting row, which only shows what will be sent.
    assert not any(c.ok for c in checks.values()
                   if not c.warn and c.name != "tenant demo: reporting"), checks
    assert "not current" in checks["database"].detail
    assert "refused (401)" in checks["tenant demo: Optimove key"].detail
    assert "OPTIBRIDGE_DEMO_OPTIMOVE_KEY" in checks["tenant demo: Optimove key"].fix
    assert "refused" in checks["tenant demo: platform key"].detail
    assert "public_url" in checks["public URL"].fix

    environ = settled.environment()
    checks = {c.name: c for c in await run_checks(parse_config(data, environ=environ))}
    assert checks["tenant demo: Optimove key"].ok
    assert "not a bouncing domain" in checks["tenant demo: platform key"].detail


def test_the_command_prints_a_table_and_exits_by_the_result(settled: Rehearsal,
                                                            tmp_path: Path) -> None:
    path = settled.write_config()
    runner = CliRunner()
    fine = runner.invoke(app, ["doctor", "--config", str(path)], env=settled.environment())
    assert fine.exit_code == 0, fine.output
    assert "optibridge doctor" in fine.output and "FIX" not in fine.output
    broken = tmp_path / "broken.toml"
    broken.write_text("[server]\npublic_url = 'ftp://x'\n")
    result = runner.invoke(app, ["doctor", "--config", str(broken)])
    assert result.exit_code == 1
    assert "FIX" in result.output and "config" in result.output


EXAMPLE = Path(__file__).parents[2] / "examples" / "optibridge.toml"


def test_a_fresh_copy_of_the_example_names_every_variable_to_export(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A newcomer's first run: the example copied, nothing exported yet."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(console, "width", 250)  # the table's cells unwrapped
    (tmp_path / "optibridge.toml").write_text(EXAMPLE.read_text())
    result = CliRunner().invoke(app, ["doctor"], env={"OPTIBRIDGE_ADMIN_TOKEN": None},
                                terminal_width=200)
    assert result.exit_code == 1
    exports = re.findall(r"export (\w+)=", result.output)
    # All three at once; the optional admin token is not among them.
    assert sorted(exports) == ["ACME_OPTIMOVE_API_KEY", "ACME_PLATFORM_API_KEY",
                               "OPTIBRIDGE_SIGNING_SECRET"], result.output
    assert "fix optibridge.toml" not in result.output
    assert list(tmp_path.iterdir()) == [tmp_path / "optibridge.toml"]  # no optibridge.db


def test_an_http_public_url_and_an_unset_admin_token_are_warned_about(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = EXAMPLE.read_text().replace("https://bridge.example.com",
                                       f"http://bridge.example.com:{free_port()}")
    (tmp_path / "optibridge.toml").write_text(text)
    # OPTIBRIDGE_ADMIN_TOKEN is left out: unset.
    env = {"OPTIBRIDGE_SIGNING_SECRET": "s" * 20, "ACME_OPTIMOVE_API_KEY": "k",
           "ACME_PLATFORM_API_KEY": "p"}
    config = load_config(tmp_path / "optibridge.toml", environ=env)
    scheme = check_public_scheme(config)
    assert scheme is not None and scheme.warn and "plain HTTP" in scheme.detail
    assert "https://" in scheme.fix and "rehearsal" not in scheme.detail
    admin = check_admin_token(config)
    assert admin.ok and admin.warn and "OPTIBRIDGE_ADMIN_TOKEN is not set" in admin.detail
    database = asyncio.run(check_database(config))
    assert database.ok and database.warn and "does not exist yet" in database.detail
    assert not (tmp_path / "optibridge.db").exists()


def test_one_tenant_is_one_tenant(settled: Rehearsal, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 250)
    path = settled.write_config()
    result = CliRunner().invoke(app, ["doctor", "--config", str(path)],
                                env=settled.environment())
    assert "1 tenant" in result.output and "1 tenants" not in result.output, result.output
async def test_a_key_refused_for_read_back_alone_is_a_fix(settled: Rehearsal) -> None:
    from optibridge.sandbox.optimove import FaultPlan

    settled.optimove.set_faults(FaultPlan(auth_failure_status=403, auth_failure_functions=(
        frozenset({"GetCustomerChannelInteractions"}))))
    try:
        checks = {c.name: c for c in await run_checks(settled.config)}
    finally:
        settled.optimove.set_faults(None)
    assert checks["tenant demo: Optimove key"].ok
    readback = checks["tenant demo: read-back"]
    assert not readback.ok and "refused (403)" in readback.detail, readback
    assert "customers functions" in readback.fix


async def test_doctors_optimove_calls_count_in_the_keys_shared_window(
        settled: Rehearsal, tmp_path: Path) -> None:
    """Run beside ``serve`` on the same database, doctor's calls (the key's check and the
    read-back probe) are counted where serve counts its own; with no database yet, doctor
    creates none."""
    from optibridge.pipeline.lease import fingerprint
    from optibridge.store import open_store

    data = settled.config_data()
    missing = tmp_path / "not-yet.db"
    data["server"]["database_url"] = f"sqlite:///{missing}"
    await run_checks(parse_config(data, environ=settled.environment()))
    assert not missing.exists()

    data["server"]["database_url"] = f"sqlite:///{tmp_path / 'shared.db'}"
    config = parse_config(data, environ=settled.environment())
    store = await open_store(config.server.database_url)
    key = fingerprint(config.tenant("demo").key())
    try:
        before = await store.calls_in_window(key, 3600)
        await run_checks(config)
        after = await store.calls_in_window(key, 3600)
    finally:
        await store.db.dispose()
    assert (before, after) == (0, 2)
