"""The sender's model: which events each contact's messages produce, a chunk at a time.

No object per event: each chunk appends addresses to one list per (event, channel), and the
sandbox merges those lists into its open callback windows.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from optibridge.sandbox.platform.contract import Channel, Event
from optibridge.sandbox.platform.model import EventRates

Row = tuple[str | None, str | None, Mapping[str, str]]  # email, telephone, fields
Batch = dict[tuple[Event, Channel], list[str]]
TAG = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")


def render(body: str, fields: Mapping[str, str]) -> str:
    """Replace ``{{field}}`` with the contact's field; an unknown field stays as the literal
    tag so that tests can see it."""
    return TAG.sub(lambda m: fields.get(m.group(1), m.group(0)), body)


@dataclass
class Run:
    """One campaign being sent: the list as it was at SENDING, and how far we are."""

    rows: Sequence[Row]
    payloads: Sequence[tuple[Channel, str]]  # type, template body
    rng: random.Random
    rates: EventRates
    withhold: float
    stop_at: int  # contacts handled before the campaign ends (ERROR if short of all rows)
    position: int = 0
    batch: Batch = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.position >= self.stop_at

    def step(self, size: int) -> Batch:
        """Events of the next ``size`` contacts, as address lists per (event, channel)."""
        end = min(self.stop_at, self.position + size)
        out: Batch = {}
        for kind, _ in self.payloads:
            if kind is Channel.EMAIL:
                self._emails(self.rows[self.position:end], out)
            else:
                self._sms(self.rows[self.position:end], out)
        self.position = end
        return out

    def _lists(self, out: Batch, kind: Channel,
               events: Sequence[Event]) -> list[list[str]]:
        return [out.setdefault((event, kind), []) for event in events]

    def _emails(self, rows: Sequence[Row], out: Batch) -> None:
        submitted, delivered, bounced, opened, clicked = self._lists(out, Channel.EMAIL, (
            Event.SUBMITTED, Event.DELIVERED, Event.BOUNCED,
            Event.OPENED, Event.CLICKED))
        draw = self.rng.random
        rates = self.rates
        p_delivered, p_bounced = rates.delivered, rates.delivered + rates.bounced
        for email, _, _ in rows:
            if not email or (self.withhold and draw() < self.withhold):
                continue
            submitted.append(email)
            outcome = draw()
            if outcome < p_delivered:
                delivered.append(email)
                if draw() < rates.opened:
                    opened.append(email)
                    if draw() < rates.clicked:
                        clicked.append(email)
            elif outcome < p_bounced:
                bounced.append(email)

    def _sms(self, rows: Sequence[Row], out: Batch) -> None:
        delivered, bounced = self._lists(out, Channel.SMS,
                                         (Event.DELIVERED, Event.BOUNCED))
        draw = self.rng.random
        p_delivered = self.rates.delivered
        p_bounced = p_delivered + self.rates.bounced
        for _, telephone, _ in rows:
            if not telephone or (self.withhold and draw() < self.withhold):
                continue
            outcome = draw()
            if outcome < p_delivered:
                delivered.append(telephone)
            elif outcome < p_bounced:
                bounced.append(telephone)

    def rendered(self) -> dict[str, str]:
        """Address -> text of every contact handled so far."""
        result: dict[str, str] = {}
        for kind, body in self.payloads:
            for email, telephone, fields in self.rows[:self.position]:
                address = email if kind is Channel.EMAIL else telephone
                if address:
                    result[address] = render(body, fields)
        return result
