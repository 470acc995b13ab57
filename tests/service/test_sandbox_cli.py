"""`optibridge sandbox` as a partner runs it: a separate process, driven over HTTP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from optibridge.serving import free_port


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def test_sandbox_command_serves_both_emulators_and_their_admin_api(tmp_path: Path) -> None:
    optimove_port, platform_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "optibridge", "sandbox", "--optimove-port", str(optimove_port),
         "--platform-port", str(platform_port), "--gcs-port", str(free_port()),
         "--optimove-key", "k1",
         "--platform-key", "k2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "TMPDIR": str(tmp_path)})
    optimove = f"http://127.0.0.1:{optimove_port}"
    platform = f"http://127.0.0.1:{platform_port}"
    try:
        wait_until_up(optimove, process)
        wait_until_up(platform, process)
        # The README's rehearsal steps.
        loaded = httpx.post(f"{optimove}/sandbox/demo/audiences/1001/504", json=[
            {"CustomerID": "C1", "TemplateID": 1, "ScheduledTime": "2026-11-22 10:00:00",
             "Attributes": {"Email": "c1@example.com"}}])
        assert loaded.json() == {"loaded": 1, "total": 1}, loaded.text
        faults = httpx.put(f"{optimove}/sandbox/faults", json={"error_rate": 0.1})
        assert faults.status_code == 200 and faults.json()["error_rate"] == 0.1
        page = httpx.get(f"{optimove}/current/customers/GetCustomerSendDetailsByChannel",
                         params={"CampaignID": 1001, "ChannelID": 504,
                                 "CustomerAttributes": "Email", "$top": 10, "$skip": 0},
                         headers={"X-API-KEY": "k1"})
        assert page.status_code in (200, 500)  # one in ten answers 500 by the fault plan
        assert httpx.get(f"{optimove}/current/general/GetRegisteredEventListeners",
                         headers={"X-API-KEY": "wrong"}).status_code == 401
        journal = httpx.get(f"{optimove}/sandbox/demo/journal").json()
        assert any(e["function"] == "GetCustomerSendDetailsByChannel" for e in journal)
        domains = httpx.get(f"{platform}/domain", headers={"Authorization": "Bearer k2"})
        assert domains.status_code == 200 and domains.json()["total"] >= 2
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert "X-API-KEY: k1" in output and "Bearer k2" in output
    # Stopped as a supervisor stops it (SIGTERM), it removes its GCS files' folder.
    assert process.returncode == 0, output
    assert not list(tmp_path.glob("optibridge-gcs-*"))


def test_the_admin_urls_the_sandbox_prints_answer() -> None:
    optimove_port, platform_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "optibridge", "sandbox", "--optimove-port", str(optimove_port),
         "--platform-port", str(platform_port), "--gcs-port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_until_up(f"http://127.0.0.1:{optimove_port}", process)
        wait_until_up(f"http://127.0.0.1:{platform_port}", process)
        assert process.stdout is not None
        # Printed when up. A request line of uvicorn's may come between them: each server's
        # start configures uvicorn's loggers anew, and for that moment a request to the
        # one already up (wait_until_up's) is logged.
        lines: list[str] = []
        admin_urls: list[str] = []
        while len(admin_urls) < 2 and len(lines) < 10:
            lines.append(process.stdout.readline().decode())
            admin_urls = re.findall(r"admin: (\S+)", "".join(lines))
        assert len(admin_urls) == 2, lines
        for url in admin_urls:
            answer = httpx.get(url)
            assert answer.status_code == 200, (url, answer.text)
            assert answer.json()["admin"], answer.text
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_sandbox_flags_set_the_read_back_semantics_and_a_revoked_key() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "optibridge", "sandbox", "optimove", "--optimove-port",
         str(port), "--optimove-key", "k1", "--readback-delay", "3", "--readback-rows",
         "distinct", "--readback-date", "send", "--auth-failure-status", "401",
         "--auth-failure-seconds", "60"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    optimove = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(optimove, process)
        plan = httpx.get(f"{optimove}/sandbox/faults").json()
        assert {k: plan[k] for k in ("readback_delay_seconds", "readback_rows",
                                     "readback_date", "auth_failure_status",
                                     "auth_failure_seconds")} == {
            "readback_delay_seconds": 3.0, "readback_rows": "distinct",
            "readback_date": "send", "auth_failure_status": 401,
            "auth_failure_seconds": 60.0}
        refused = httpx.get(f"{optimove}/current/actions/GetExecutionChannels",
                            headers={"X-API-KEY": "k1"})
        assert refused.status_code == 401
    finally:
        process.terminate()
        process.communicate(timeout=30)
    wrong = subprocess.run(
        [sys.executable, "-m", "optibridge", "sandbox", "optimove", "--readback-rows", "some"],
        capture_output=True, timeout=60)
    assert wrong.returncode != 0 and b"readback_rows" in wrong.stdout + wrong.stderr
