"""Subscriptions (seed 002, third part): share customers' opt-in states with Optimove in
one of its three ways, from a CSV or from the platform's bounces.

- ``attribute``: AddCustomerAttribute once, then UpdateCustomerAttributes in batches
  (default 1,000, at most 10,000 customers a call);
- ``preference``: SetCustomerChannelPreference, at most 50,000 customers a call, one call
  group per opt-in state (CommunicationMode values are not public: both are options);
- ``file``: a CSV ``CustomerID,<attribute>`` for the client's batch process.

Input is validated completely before the first call, so bad input changes nothing; a
failed call leaves earlier batches applied, and re-running is safe (each call sets values).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from optibridge.optimove.client import OptimoveClient
from optibridge.optimove.models import (
    MAX_ATTRIBUTE_CUSTOMERS,
    MAX_PREFERENCE_CUSTOMERS,
    AttributeValue,
    CustomerAttributesUpdate,
)
from optibridge.store import Store

OPTED_IN = frozenset({"1", "true", "t", "yes", "y", "in", "opt-in", "optin", "opted-in",
                      "opted_in", "subscribed"})
OPTED_OUT = frozenset({"0", "false", "f", "no", "n", "out", "opt-out", "optout", "opted-out",
                       "opted_out", "unsubscribed"})
ATTRIBUTE_TYPE = "INT"  # 1 opted in, 0 opted out
MAX_CUSTOMER_ID = 200
Progress = Callable[[int], None]


class Mode(StrEnum):
    ATTRIBUTE = "attribute"
    PREFERENCE = "preference"
    FILE = "file"


@dataclass(frozen=True)
class OptIn:
    customer_id: str
    opted_in: bool


@dataclass(frozen=True)
class BadRow:
    row: int  # 1-based line number in the file
    reason: str
    text: str


@dataclass(frozen=True)
class Source:
    entries: tuple[OptIn, ...]
    rejects: tuple[BadRow, ...] = ()


def parse_state(value: str) -> bool | None:
    """True for opted in, False for opted out, None when it is neither."""
    text = value.strip().lower()
    return True if text in OPTED_IN else False if text in OPTED_OUT else None


def _check_row(cells: list[str], seen: dict[str, int], line: int) -> OptIn | str:
    """The row's entry, or why it is refused."""
    if len(cells) != 2:
        return f"expected 2 columns (customer ID, opt-in state), found {len(cells)}"
    customer, state = cells[0].strip(), parse_state(cells[1])
    if not customer:
        return "the customer ID is empty"
    if len(customer) > MAX_CUSTOMER_ID:
        return f"the customer ID is longer than {MAX_CUSTOMER_ID} characters"
    if state is None:
        return f"opt-in state {cells[1].strip()!r} is not one of 1/0, true/false, yes/no, " \
               "opt-in/opt-out, subscribed/unsubscribed"
    if customer in seen:
        return f"customer {customer} is already on row {seen[customer]}"
    seen[customer] = line
    return OptIn(customer, state)


def read_csv(path: Path) -> Source:
    """Read ``customer ID, opt-in state`` rows (a header row is skipped); bad rows are
    kept with their row number and reason, the rest are used."""
    entries: list[OptIn] = []
    rejects: list[BadRow] = []
    seen: dict[str, int] = {}
    first = True
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if first and len(cells) == 2 and parse_state(cells[1]) is None:
                first = False  # a header row
                continue
            first = False
            checked = _check_row(cells, seen, reader.line_num)
            if isinstance(checked, OptIn):
                entries.append(checked)
            else:
                rejects.append(BadRow(reader.line_num, checked, ",".join(cells)))
    return Source(tuple(entries), tuple(rejects))


def write_rejects(path: Path, rejects: Sequence[BadRow]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "reason", "text"])
        writer.writerows([r.row, r.reason, r.text] for r in rejects)


async def bounced_source(store: Store, tenant: str, channel_id: int) -> Source:
    """Customers whose message on the channel bounced: their address cannot receive, so
    they are opted out (the platform reports one kind of bounce; we take it as hard)."""
    customers = await store.bounced_customers(tenant, channel_id)
    return Source(tuple(OptIn(c, False) for c in customers))


def _batches(entries: Sequence[OptIn], size: int) -> list[Sequence[OptIn]]:
    return [entries[i:i + size] for i in range(0, len(entries), size)]


async def push_attributes(optimove: OptimoveClient, entries: Sequence[OptIn], attribute: str,
                          batch_size: int, progress: Progress | None = None) -> int:
    """AddCustomerAttribute, then UpdateCustomerAttributes ``batch_size`` customers a call."""
    if not 1 <= batch_size <= MAX_ATTRIBUTE_CUSTOMERS:
        raise ValueError(f"batch size must be 1..{MAX_ATTRIBUTE_CUSTOMERS}, not {batch_size}")
    await optimove.add_customer_attribute(attribute, ATTRIBUTE_TYPE)
    for part in _batches(entries, batch_size):
        await optimove.update_customer_attributes([
            CustomerAttributesUpdate(customer_id=e.customer_id, attributes=(
                AttributeValue(real_field_name=attribute, value=int(e.opted_in)),))
            for e in part], max_customers=batch_size)
        if progress is not None:
            progress(len(part))
    return len(entries)


async def push_preferences(optimove: OptimoveClient, channel_id: int,
                           entries: Sequence[OptIn], batch_size: int, opt_in_mode: int,
                           opt_out_mode: int, progress: Progress | None = None) -> int:
    """SetCustomerChannelPreference: opted-in customers with ``opt_in_mode``, opted-out
    ones with ``opt_out_mode``, ``batch_size`` customers a call."""
    if not 1 <= batch_size <= MAX_PREFERENCE_CUSTOMERS:
        raise ValueError(f"batch size must be 1..{MAX_PREFERENCE_CUSTOMERS}, not {batch_size}")
    for mode, wanted in ((opt_in_mode, True), (opt_out_mode, False)):
        group = [e for e in entries if e.opted_in is wanted]
        for part in _batches(group, batch_size):
            await optimove.set_customer_channel_preference(
                channel_id, [e.customer_id for e in part], mode)
            if progress is not None:
                progress(len(part))
    return len(entries)


def write_batch_file(path: Path, entries: Sequence[OptIn], attribute: str,
                     progress: Progress | None = None) -> int:
    """The standalone subscription file of a client's batch process:
    ``CustomerID,<attribute>`` with a header, 1 opted in, 0 opted out."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["CustomerID", attribute])
        writer.writerows([e.customer_id, int(e.opted_in)] for e in entries)
    if progress is not None:
        progress(len(entries))
    return len(entries)
