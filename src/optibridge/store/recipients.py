"""A send's recipient rows as the store writes them: one per customer, an address once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from optibridge.domain import Event

# One customer as a pull page or a trigger gather would add them to a send: (send id,
# customer id, address, fields JSON, the send's day). A plain tuple: a page makes 10,000.
Candidate = tuple[int, str, str | None, str | None, dt.date]


@dataclass
class RecipientRows:
    """The recipient rows to insert and the Dropped interactions that go with them."""

    recipients: list[dict[str, Any]] = field(default_factory=list)
    days: list[dt.date] = field(default_factory=list)  # each recipient's send's day
    dropped: list[dict[str, Any]] = field(default_factory=list)

    def dropped_of(self, without: AbstractSet[tuple[int, str]], now: float
                   ) -> list[dict[str, Any]]:
        """A Dropped for each recipient whose (send, customer) is in ``without``."""
        return [dropped_row(r["send_id"], r["customer_id"], day, now)
                for r, day in zip(self.recipients, self.days, strict=True)
                if (r["send_id"], r["customer_id"]) in without]


def recipient_rows(candidates: Iterable[Candidate], now: float,
                   taken: AbstractSet[tuple[int, str]] = frozenset()) -> RecipientRows:
    """Each customer of a send once (their first row); each address of a send once (its
    first customer's; ``taken``: (send, address) pairs already held). A later customer
    with a taken address keeps none: the platform's list holds an address once, so they
    would get no message of their own and share the first one's events. They are
    Dropped, as are the customers without an address."""
    rows = RecipientRows()
    customers: set[tuple[int, str]] = set()
    addresses = set(taken)
    for send_id, customer, address, fields, day in candidates:
        if (send_id, customer) in customers:
            continue
        customers.add((send_id, customer))
        if address and (send_id, address) in addresses:
            address = None
        elif address:
            addresses.add((send_id, address))
        rows.recipients.append({"send_id": send_id, "customer_id": customer,
                                "address": address, "fields": fields})
        rows.days.append(day)
        if not address:
            rows.dropped.append(dropped_row(send_id, customer, day, now))
    return rows


def dropped_row(send_id: int, customer_id: str, day: dt.date, now: float) -> dict[str, Any]:
    return {"send_id": send_id, "customer_id": customer_id, "event": Event.DROPPED,
            "day": day, "created_at": now}
