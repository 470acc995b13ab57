"""Decoding audience pages in a process beside the event loop: the same entries as on the
loop, a lost process replaced, and no process left behind by a service killed with -9."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optibridge.config import ChannelConfig
from optibridge.domain import AudienceEntry, AudiencePage, FieldsJson
from optibridge.offload import Offload
from optibridge.optimove.pages import UnreadablePage
from optibridge.pipeline.entries import EntryMaker, decode_entries

CHANNEL = ChannelConfig.model_validate({
    "type": "email", "address_attribute": "Email", "personalization": ["FirstName"],
    "personalization_defaults": {"FirstName": "friend"}})
MAKER = EntryMaker(CHANNEL, ["Email", "FirstName"])
PAGE = (b'[{"CustomerID":"C1","TemplateID":7,"ScheduledTime":"2026-12-04T09:00:00Z",'
        b'"CustomerAttributes":[" A@Example.com ","Ann"]},'
        b'{"CustomerID":2,"TemplateID":7,"ScheduledTime":"2026-12-04T10:00:00+01:00",'
        b'"CustomerAttributes":["not an address",null]}]')


async def test_a_page_decoded_in_a_process_is_the_page_decoded_on_the_loop() -> None:
    offload = Offload(1)
    try:
        decoded = await offload.run(decode_entries, PAGE, 2, ";", MAKER)
    finally:
        offload.close()
    assert decoded == decode_entries(PAGE, 2, ";", MAKER)
    assert list(decoded) == [
        AudienceEntry("C1", 7, dt.datetime(2026, 12, 4, 9), "a@example.com",
                      FieldsJson('{"FirstName":"Ann"}')),
        AudienceEntry("2", 7, dt.datetime(2026, 12, 4, 9), None,
                      FieldsJson('{"FirstName":"friend"}'))]


def test_a_pages_rows_due_at_one_time_share_one_time() -> None:
    """Both rows are due at 09:00 UTC, written in two zones: one object, which the page's
    pickle then carries once."""
    page = decode_entries(PAGE, 2, ";", MAKER)
    assert page.scheduled_times[0] is page.scheduled_times[1]
    assert AudiencePage.of(page) == page


async def test_an_unreadable_page_says_what_is_wrong_from_the_process() -> None:
    offload = Offload(1)
    try:
        with pytest.raises(UnreadablePage, match=r"a row does not fit: 0\.TemplateID"):
            await offload.run(decode_entries, b'[{"CustomerID":"C1","TemplateID":"x",'
                              b'"ScheduledTime":"2026-12-04T09:00:00"}]', 0, ";", MAKER)
    finally:
        offload.close()


def die_once(marker: str) -> int:
    """Kills its process the first time (a process lost under work), then answers."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(9)
    return os.getpid()


def die_in_a_process(service: int) -> str:
    """Kills any process but the service's: work that the processes can never finish."""
    if os.getpid() != service:
        os._exit(9)
    return "done where it was asked for"


async def test_a_lost_process_is_replaced_and_the_work_done_again(tmp_path: Path) -> None:
    offload = Offload(1)
    try:
        pid = await offload.run(die_once, str(tmp_path / "died"))
        assert pid != os.getpid()
        assert await offload.run(die_once, str(tmp_path / "died")) == pid  # the new one stays
    finally:
        offload.close()


async def test_work_that_loses_its_process_twice_is_done_on_the_loop() -> None:
    offload = Offload(1)
    try:
        assert await offload.run(die_in_a_process, os.getpid()) == "done where it was asked for"
    finally:
        offload.close()


CHILD = """
import asyncio, os, sys
from optibridge.offload import Offload
offload = Offload(1)
print(asyncio.run(offload.run(os.getpid)), flush=True)
sys.stdin.read()  # until killed
"""


def test_a_service_killed_with_minus_9_leaves_no_decoding_process() -> None:
    service = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert service.stdout is not None
        decoder = int(service.stdout.readline())
        assert _running(decoder)
    finally:
        service.kill()
        service.wait(10)
    deadline = time.monotonic() + 10
    while _running(decoder) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(decoder)


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie has exited; its parent, the fork server, reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
