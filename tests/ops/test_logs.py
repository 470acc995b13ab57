"""Logs: JSON lines with tenant, campaign and send IDs; secrets and addresses never in clear."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from optibridge import logs
from optibridge.demo import OPTIMOVE_KEY, PLATFORM_KEY, SIGNING_SECRET, make_audience


@pytest.fixture(autouse=True)
def _restore_logging() -> object:
    yield None
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def test_secret_fields_are_dropped_and_addresses_masked() -> None:
    event = logs.redact(None, "info", {
        "event": "x", "api_key": "k", "Authorization": "Bearer y", "sig": "z",
        "note": "sent to ada@example.com and +447700900123",
        "contacts": [{"email": "bob@example.org", "token": "t"}, ("+4917612345678",)]})
    text = json.dumps(event)
    for leaked in ("Bearer y", '"k"', '"z"', "ada@example.com", "example.com",
                   "900123", "bob@", "example.org", "12345678", '"t"'):
        assert leaked not in text, leaked
    assert event["event"] == "x"
    assert event["note"].startswith("sent to a***@***")


def test_adjacent_addresses_are_all_masked() -> None:
    masked = logs.mask("a@b.com,c@d.com;e@f.com")
    assert "b.com" not in masked and "d.com" not in masked and "f.com" not in masked


def test_registered_secrets_are_masked_inside_any_text() -> None:
    logs.register_secrets(["s3cr3t-value-123", None, "abc"])  # too short ones are ignored
    masked = logs.mask("GET /x?sig=deadbeef&send=4 failed: key s3cr3t-value-123 refused")
    assert "s3cr3t-value-123" not in masked and "deadbeef" not in masked
    assert "send=4" in masked
    assert logs.mask("abc") == "abc"


def test_stdlib_records_are_json_and_redacted_too() -> None:
    out = io.StringIO()
    logs.register_secrets(["platform-key-xyz-987"])
    logs.configure_logging("json", file=out)
    logging.getLogger("optibridge.optimove.client").warning(
        "retrying for %s with platform-key-xyz-987", "eve@example.net")
    try:
        raise ValueError("boom for mallory@example.net")
    except ValueError:
        structlog.get_logger().exception("step.failed", tenant="acme", send=3)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["logger"] == "optibridge.optimove.client"
    assert lines[0]["level"] == "warning"
    assert "eve@" not in out.getvalue() and "platform-key-xyz-987" not in out.getvalue()
    assert lines[1]["tenant"] == "acme" and lines[1]["send"] == 3
    assert "ValueError" in lines[1]["exception"] and "mallory@" not in lines[1]["exception"]


def test_console_format_is_readable_lines() -> None:
    out = io.StringIO()
    logs.configure_logging("console", file=out)
    structlog.get_logger().info("execution.ready", tenant="acme", send=1, to="x@y.com")
    line = out.getvalue()
    assert "execution.ready" in line and "tenant=acme" in line and "x@y.com" not in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


@pytest.mark.slow
def test_a_full_demo_run_logs_no_key_and_no_customer_address(tmp_path: Path) -> None:
    customers = 300
    env = {**os.environ, "COLUMNS": "400", "TMPDIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "optibridge", "demo", "-n", str(customers),
                          "--keep"],
                         capture_output=True, text=True, timeout=300, env=env, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    found = re.search(r"working folder (\S+)", run.stdout)
    assert found, run.stdout
    text = (Path(found.group(1)) / "demo.log").read_text()
    events = [json.loads(line) for line in text.splitlines()]
    # The logs are there and carry the IDs of each step ...
    ready = [e for e in events if e["event"] == "execution.ready"]
    assert len(ready) == 6 and all({"tenant", "send", "campaign"} <= e.keys() for e in ready)
    assert any(e["event"] == "report.batch" for e in events)
    # ... but no secret, and not one customer's address.
    for secret in (OPTIMOVE_KEY, PLATFORM_KEY, SIGNING_SECRET):
        assert secret not in text
    now = dt.datetime(2030, 1, 1)
    addresses = {c.address for c in make_audience(customers, [1, 2], 3, [now, now], 7)
                 if c.address}
    assert len(addresses) > 280
    leaked = sorted(a for a in addresses if a in text or a.split("@")[0] + "@" in text)
    assert not leaked, leaked[:5]
