"""``optibridge doctor`` against the sandboxes: all fine, then each kind of mistake."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from optibridge.cli import app
from optibridge.cli.doctor import run_checks
from optibridge.config import parse_config
from optibridge.demo import Rehearsal
from optibridge.serving import free_port


async def test_everything_fine_on_the_running_service(settled: Rehearsal) -> None:
    checks = await run_checks(settled.config)
    assert [c.name for c in checks] == ["database", "tenant demo: Optimove key",
                                        "tenant demo: platform key", "public URL"]
    assert all(c.ok for c in checks), checks


async def test_wrong_keys_a_dead_url_and_a_missing_database(settled: Rehearsal,
                                                            tmp_path: Path) -> None:
    data = settled.config_data()
    data["server"]["public_url"] = f"http://127.0.0.1:{free_port()}"
    data["server"]["database_url"] = f"sqlite:///{tmp_path / 'never-migrated.db'}"
    data["tenants"]["demo"]["platform"]["bounce_domain"] = 999
    environ = {**settled.environment(), "OPTIBRIDGE_DEMO_OPTIMOVE_KEY": "wrong-key-123",
               "OPTIBRIDGE_DEMO_PLATFORM_KEY": "wrong-key-456"}
    checks = {c.name: c for c in await run_checks(parse_config(data, environ=environ))}
    assert not any(c.ok for c in checks.values()), checks
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
