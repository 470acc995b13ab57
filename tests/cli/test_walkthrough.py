"""The README's sandbox walkthrough, run end to end as a newcomer would copy it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from optibridge.serving import free_port

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "examples" / "sandbox-walkthrough.sh"


def readme_walkthrough() -> list[str]:
    """The command lines of the README's walkthrough block."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Walkthrough: the sandboxes with `serve`", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_the_readme_walkthrough_is_the_script() -> None:
    script = SCRIPT.read_text()
    lines = readme_walkthrough()
    assert len(lines) > 10
    missing = [line for line in lines if line not in script]
    assert missing == [], missing


@pytest.mark.slow
def test_the_walkthrough_reconciles_a_campaign_sent_with_serve(tmp_path: Path) -> None:
    ports = {"OPTIMOVE_PORT": free_port(), "PLATFORM_PORT": free_port(),
             "SERVICE_PORT": free_port()}
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "COLUMNS": "200",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=400, check=False)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out + (tmp_path / "serve.log").read_text()
    assert "changed 1 added" in out  # the template reached Optimove's channel
    assert "registered EventTypeID 13 on channel 504" in out
    assert "Optimove holds exactly what the store reported" in out
    # One send, one platform campaign: nothing retried into a loop.
    assert re.search(r"^platform campaigns: 1$", out, re.M), out
    served = (tmp_path / "serve.log").read_text()
    assert f"listening on 127.0.0.1:{ports['SERVICE_PORT']}" in served, served
    assert "/callbacks/demo?send=" in served
