"""The status page in headless Chromium shows the campaign's real numbers."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from optibridge.demo import Rehearsal
from optibridge.store import Store
from tests.ops.conftest import CUSTOMERS

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
VALUE = re.compile(r'data-send="(\d+)"\s+data-stage="(\w+)"\s+data-value="(\d*)"')
STAGES = ("submitted", "delivered", "opened", "clicked", "bounced", "dropped")


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("no chromium binary (.ci/run installs Debian's chromium)")
    return found


def browse(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
               "--window-size=1280,1600", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)


def shown(dom: str) -> dict[int, dict[str, int]]:
    """Per send, the numbers its funnel chart shows."""
    values: dict[int, dict[str, int]] = defaultdict(dict)
    for send, stage, value in VALUE.findall(dom):
        if value:
            values[int(send)][stage] = int(value)
    return dict(values)


@pytest.mark.slow
async def test_status_page_in_chromium_shows_the_real_funnel(
        settled: Rehearsal, store: Store, tmp_path: Path) -> None:
    binary = chromium()
    url = f"{settled.service_url}/ui"
    dom = browse(binary, tmp_path / "profile", "--dump-dom", url).stdout
    assert "Campaigns" in dom and "campaign 1001" in dom and "campaign 1002" in dom
    numbers = shown(dom)

    # Each send's chart shows what the store holds for it ...
    summaries = await store.campaign_summaries()
    sends = [s for c in summaries for s in c.sends]
    assert sorted(numbers) == sorted(s.id for s in sends) and len(sends) == 6
    for send in sends:
        assert numbers[send.id]["recipients"] == send.recipients
        for stage in STAGES:
            if send.channel_type == "sms" and stage == "submitted":
                assert stage not in numbers[send.id]  # shown as n/a
                continue
            assert numbers[send.id].get(stage) == send.count(stage), (send.id, stage)

    # ... and, summed, what the platform really emitted (its ground truth).
    emitted = settled.emitted()
    assert sum(n["recipients"] for n in numbers.values()) == CUSTOMERS
    for stage in STAGES:
        total = sum(n.get(stage, 0) for n in numbers.values())
        assert total == emitted[stage] > 0, stage

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "ui.png"
    shot.unlink(missing_ok=True)
    browse(binary, tmp_path / "profile", f"--screenshot={shot}", url)
    assert shot.exists() and shot.stat().st_size > 10_000
    campaign_shot = ARTIFACTS / "ui-campaign.png"
    pk = next(c.pk for c in summaries if c.campaign_id == 1001)
    browse(binary, tmp_path / "profile", f"--screenshot={campaign_shot}",
           f"{settled.service_url}/ui/campaigns/{pk}")
    assert campaign_shot.exists()


async def test_campaign_page_lists_its_sends_with_totals(settled: Rehearsal,
                                                         store: Store) -> None:
    summaries = await store.campaign_summaries()
    email = next(c for c in summaries if c.campaign_id == 1001)
    async with httpx.AsyncClient(base_url=settled.service_url) as client:
        page = await client.get(f"/ui/campaigns/{email.pk}")
        missing = await client.get("/ui/campaigns/999999")
        css = await client.get("/ui/static/ui.css")
    assert page.status_code == 200
    assert f"Campaign {email.campaign_id}" in page.text
    assert sorted(int(s) for s, _, _ in VALUE.findall(page.text)) == sorted(
        s.id for s in email.sends for _ in range(7))
    assert f"{email.total('opened'):,}" in page.text
    assert missing.status_code == 404
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
