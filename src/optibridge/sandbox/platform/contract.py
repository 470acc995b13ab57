"""Seed 003 as the sandbox reads it: campaign states and moves, events, the callback body.

Written from the seed and platform-api.md alone, never from the client
(``optibridge.platform``): if the client misreads the seed, the sandbox refuses what it does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from urllib.parse import quote_plus


class Channel(StrEnum):
    """A payload's type (seed 003: "a set of payloads (Email, SMS)")."""

    EMAIL = "email"
    SMS = "sms"


class State(StrEnum):
    DRAFT = "DRAFT"
    SCHEDULED = "SCHEDULED"
    READY = "READY"
    SENDING = "SENDING"
    DONE = "DONE"
    ERROR = "ERROR"


class Event(StrEnum):
    """Seed 003's message lifecycle events."""

    SUBMITTED = "submitted"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    OPENED = "opened"
    CLICKED = "clicked"


# Seed 003: "Valid states: DRAFT⮂SCHEDULED⮂READY⇒SENDING⇒(DONE|ERROR)". Each state may also
# be PUT as itself (an idempotent edit); every other move is refused with 409.
MOVES: Mapping[State, frozenset[State]] = {
    State.DRAFT: frozenset({State.DRAFT, State.SCHEDULED}),
    State.SCHEDULED: frozenset({State.SCHEDULED, State.DRAFT, State.READY}),
    State.READY: frozenset({State.READY, State.SCHEDULED, State.SENDING}),
    State.SENDING: frozenset({State.SENDING, State.DONE, State.ERROR}),
    State.DONE: frozenset({State.DONE}),
    State.ERROR: frozenset({State.ERROR}),
}
PLATFORM_ONLY = frozenset({State.SENDING, State.DONE, State.ERROR})  # no PUT moves there
EDITABLE = frozenset({State.DRAFT, State.SCHEDULED, State.READY})
LIVE = frozenset({State.READY, State.SENDING})  # the list is in use

# Seed 003: "SMS payloads only generate delivered and bounced events."
EVENTS_OF: Mapping[Channel, tuple[Event, ...]] = {
    Channel.EMAIL: tuple(Event),
    Channel.SMS: (Event.DELIVERED, Event.BOUNCED),
}
_ADDRESS_FIELD = {Channel.EMAIL: "email", Channel.SMS: "telephone"}


def callback_body(event: Event, when: int, channel: Channel, addresses: Sequence[str]) -> bytes:
    """The form body of one callback: ``event``, ``when``, then ``email[i]`` or
    ``telephone[i]`` for i = 0, 1, ... (seed 003's callback POST parameters)."""
    if event not in EVENTS_OF[channel]:
        raise ValueError(f"{channel.value} payloads generate no {event.value!r} event")
    if not addresses or when < 0:
        raise ValueError("a callback needs addresses and a 'when' of 0 or later")
    name = _ADDRESS_FIELD[channel]
    parts = [f"event={event.value}", f"when={when}"]
    parts.extend(f"{name}[{index}]={quote_plus(address, safe='@')}"
                 for index, address in enumerate(addresses))
    return "&".join(parts).encode("ascii")


def parse_state(text: str) -> State:
    """A ``state`` parameter, or ValueError naming the valid states."""
    try:
        return State(text)
    except ValueError:
        names = ", ".join(s.value for s in State)
        raise ValueError(f"state: {text[:20]!r} is not one of {names}") from None
