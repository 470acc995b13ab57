"""Flow 6 inbound: verify, parse and store platform callbacks; map them to interactions.

The HTTP answer waits only for the raw callback to be stored (durable before 2xx); mapping
addresses to customers happens afterwards in ``map_callbacks``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import parse_qs

from optibridge.domain import Event, InboxItem
from optibridge.pipeline.group_commit import GroupCommit
from optibridge.platform.callbacks import MAX_CALLBACK_BYTES, CallbackError, parse_callback
from optibridge.refusals import Refusal, Refused
from optibridge.signing import UrlSigner
from optibridge.store import Store

# The door's window for a callback's ``when``: not more than a day before its send was due,
# not more than a few minutes ahead of our clock (the platform's clock may run a little
# ahead). Anything outside cannot be an event of this send, and would break the mapping.
WHEN_BEFORE_SEND = 86_400.0
WHEN_AHEAD = 300.0
# Seconds the mapper waits after a pass that took everything there was (see map_callbacks).
GATHER = 0.25


@dataclass(frozen=True)
class Accepted:
    send_id: int
    event: Event
    addresses: int


class SendTimes:
    """When each send was due (Unix seconds), remembered: the door checks every callback's
    ``when`` against it without a database read per callback."""

    def __init__(self, store: Store, size: int = 10_000) -> None:
        self.store = store
        self.size = size
        self._due: OrderedDict[int, float] = OrderedDict()

    async def due(self, send_id: int) -> float | None:
        """None for a send we do not know (its callbacks are kept as problems later)."""
        found = self._due.get(send_id)
        if found is not None:
            self._due.move_to_end(send_id)
            return found
        send = await self.store.get_send(send_id)
        if send is None:
            return None
        due = send.scheduled_time.replace(tzinfo=dt.UTC).timestamp()
        self._due[send_id] = due
        if len(self._due) > self.size:
            self._due.popitem(last=False)
        return due


class InboxWriter(GroupCommit[InboxItem, None]):
    """Stores verified callbacks with group commit (see ``GroupCommit``)."""

    def __init__(self, store: Store, max_items: int = 1_000) -> None:
        async def write(items: list[InboxItem]) -> list[None]:
            await store.record_callbacks(items)
            return [None] * len(items)

        # One write at a time on both databases: side by side on PostgreSQL (GroupCommit's
        # ``writers``) showed no gain in the one run measured (BENCHMARKS.md, 2026-12-02).
        super().__init__(write, max_items)
        self.send_times = SendTimes(store)

    async def write(self, item: InboxItem) -> None:
        await self.submit(item)


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values and len(values) == 1 else None


def verified_send(signer: UrlSigner, tenant: str, query_string: str) -> int:
    """The send a callback URL names, if its signature is right (checked before the body
    is read, so an unsigned caller cannot make us read megabytes)."""
    try:
        query = parse_qs(query_string, keep_blank_values=True, max_num_fields=50)
    except ValueError:
        query = {}
    send_id = signer.verify(tenant, _one(query, "send"), _one(query, "sig"))
    if send_id is None:
        raise Refused("the callback URL's signature is missing or wrong", Refusal.FORBIDDEN)
    return send_id


async def accept_callback(send_id: int, writer: InboxWriter, store: Store, body: bytes,
                          query_string: str) -> Accepted:
    """Parse a verified send's callback and store it as received."""
    try:  # the body's size was checked at the door (``service.http.read_body``)
        batch = parse_callback(body, query_string, max_bytes=MAX_CALLBACK_BYTES)
    except CallbackError as error:
        # Signed, so it is really from the platform: keep it for inspection.
        await store.record_callback_problem("malformed", send_id,
                                            f"{error}: {body[:500]!r}")
        raise Refused(str(error)) from None
    refused = await _when_refused(writer.send_times, send_id, batch.when, store.clock())
    if refused is not None:
        await store.record_callback_problem("refused", send_id,
                                            f"{refused}: {batch.event} x{len(batch.addresses)}",
                                            key=f"when {batch.when}")
        raise Refused(f"callback: {refused}")
    event = Event(str(batch.event))
    # Stored as received; the store lowercases them in one pass (addresses are matched
    # lowercased, and telephone numbers have no letters).
    await writer.write(InboxItem(send_id, event, batch.when, batch.addresses))
    return Accepted(send_id, event, len(batch.addresses))


async def _when_refused(send_times: SendTimes, send_id: int, when: int, now: float
                        ) -> str | None:
    """Why ``when`` cannot be a time of this send's events, or None if it can."""
    if when > now + WHEN_AHEAD:
        return (f"'when' {when} is {when - now:.0f} s in the future "
                f"(at most {WHEN_AHEAD:.0f} s is allowed)")
    due = await send_times.due(send_id)
    if due is not None and when < due - WHEN_BEFORE_SEND:
        return (f"'when' {when} is {due - when:.0f} s before the send was due "
                f"(at most {WHEN_BEFORE_SEND:.0f} s is allowed)")
    return None


async def map_callbacks(store: Store, tenant: str | None = None) -> int:
    """Turn stored callbacks (of ``tenant``, if given) into interactions; returns how many
    callbacks it handled.

    A pass that found less than it could take waits ``GATHER`` seconds before the next:
    under a stream of small callbacks, mapping each few as they arrive costs a mapping
    pass's fixed work (a dozen statements, two transactions) per few callbacks, more than
    answering them; gathered, one pass maps a thousand.
    """
    handled, full = await store.map_pass(tenant=tenant)
    if handled:
        await store.fold_callback_total()
    if handled and not full:
        await asyncio.sleep(GATHER)
    return handled
