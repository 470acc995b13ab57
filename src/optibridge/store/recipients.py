"""A send's recipient rows as the store writes them: one per customer, an address once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from optibridge.domain import Event


class Candidate(NamedTuple):
    """One customer as a pull page or a trigger gather would add them to a send."""

    send_id: int
    customer_id: str
    address: str | None
    fields: str | None
    day: dt.date  # the send's day, the day of its Dropped


@dataclass
class RecipientRows:
    """The recipient rows to insert and the Dropped interactions that go with them."""

    recipients: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)


def recipient_rows(candidates: Iterable[Candidate], now: float) -> RecipientRows:
    """Each customer of a send once (their first row); each address of a send once (its
    first customer's). A later customer with a taken address keeps none: the platform's
    list holds an address once, so they would get no message of their own and share the
    first one's events. They are Dropped, as are the customers without an address."""
    rows = RecipientRows()
    customers: set[tuple[int, str]] = set()
    addresses: set[tuple[int, str]] = set()
    for c in candidates:
        if (c.send_id, c.customer_id) in customers:
            continue
        customers.add((c.send_id, c.customer_id))
        address = c.address
        if address and (c.send_id, address) in addresses:
            address = None
        elif address:
            addresses.add((c.send_id, address))
        rows.recipients.append({"send_id": c.send_id, "customer_id": c.customer_id,
                                "address": address, "fields": c.fields})
        if not address:
            rows.dropped.append(dropped_row(c, now))
    return rows


def dropped_row(candidate: Candidate, now: float) -> dict[str, Any]:
    return {"send_id": candidate.send_id, "customer_id": candidate.customer_id,
            "event": Event.DROPPED, "day": candidate.day, "created_at": now}
