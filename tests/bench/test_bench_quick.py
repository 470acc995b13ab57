"""Every benchmark runs with --quick and produces figures (never asserts a timing)."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bench.__main__ import NAMES

ROOT = Path(__file__).resolve().parents[2]
# The figure each benchmark exists to measure: it must be there and above zero.
HEADLINE = {
    "pull": "pages per second",
    "execute": "contacts per second",
    "ingest-batched": "address-events stored per second",
    "ingest-single": "ratio to the bare endpoint",
    "report": "interactions reported",
    "report-lost": "interactions reported",
    "triggered": "triggers accepted per second",
    "campaign": "wall time (listener call to settled)",
}


def _figures(text: str, name: str) -> dict[str, float]:
    section = re.search(rf"^### {re.escape(name)} --quick .*?(?=^### |\Z)", text,
                        re.MULTILINE | re.DOTALL)
    assert section, f"no figures recorded for {name}"
    figures = {}
    for line in section.group(0).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(r"-?[\d,]+(\.\d+)?", cells[1]):
            figures[cells[0]] = float(cells[1].replace(",", ""))
    return figures


@pytest.mark.slow
def test_every_benchmark_runs_quick_and_records_figures(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "bench", "all", "--quick", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = out.read_text()
    assert "Machine:" in text and "Commit:" in text
    assert set(HEADLINE) == set(NAMES)
    for name in NAMES:
        figures = _figures(text, name)
        assert figures, f"{name}: no numbers"
        assert all(math.isfinite(v) and v >= 0 for v in figures.values()), (name, figures)
        assert figures[HEADLINE[name]] > 0, (name, figures)
        assert figures.get("service peak RSS", 1) > 0, (name, figures)
