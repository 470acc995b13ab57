"""``optibridge demo`` as a newcomer runs it: where it works, real counts, nothing left."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_the_demo_says_where_it_works_counts_for_real_and_cleans_up(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200", "TMPDIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "optibridge", "demo", "-n", "300"],
                         capture_output=True, text=True, timeout=300, env=env, check=False)
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    folder = re.search(r"working folder (\S+)", out)
    assert folder and folder.group(1).startswith(str(tmp_path)), out
    assert f"removed {folder.group(1)}" in out
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())  # nothing left behind
    # The bar counts interactions: done/total, both the number the store reported.
    bar = re.search(r"interactions reported .*?([\d,]+)/([\d,]+)", out)
    assert bar, out
    done, total = (int(n.replace(",", "")) for n in bar.groups())
    assert done == total > 1, bar.group(0)
    # The URLs each side must reach, and the status page.
    for what in ("status page  http://127.0.0.1:", "/ui", "/listener/demo/<token>",
                 "/callbacks/demo?send=…&sig=…"):
        assert what in out, (what, out)


def test_the_demo_names_its_reporting_backends() -> None:
    from typer.testing import CliRunner

    from optibridge.cli import app

    result = CliRunner().invoke(app, ["demo", "--reporting", "metrics"])
    assert result.exit_code == 2
    assert "--reporting must be interactions or engagement_events" in result.output
