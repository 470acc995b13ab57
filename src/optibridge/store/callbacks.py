"""The callback inbox: stored as received, then mapped to customers and interactions."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from optibridge.domain import Event, InboxItem
from optibridge.store.base import StoreBase, chunks
from optibridge.store.schema import CallbackInbox, CallbackProblem, Interaction, Recipient, Send

# Events that prove a message was sent. One that arrives for a customer already reported
# Dropped (the callbacks were quiet long enough for us to decide) is late: reporting it too
# would count the customer as both, so it is kept as a problem instead.
SENT_PROOF = frozenset({Event.SUBMITTED, Event.DELIVERED, Event.BOUNCED})


# Addresses mapped in one write transaction: on SQLite the callback endpoint's own commits
# wait for the one write connection, so mapping goes in short transactions.
MAPPING_BUDGET = 20_000


def _within_budget(items: list[CallbackInbox]) -> list[CallbackInbox]:
    """The first callbacks whose addresses fit the budget (always at least one)."""
    total = 0
    for index, item in enumerate(items):
        total += item.count
        if total > MAPPING_BUDGET and index > 0:
            return items[:index]
    return items


class CallbackStore(StoreBase):
    async def record_callbacks(self, items: Sequence[InboxItem]) -> None:
        """Store verified callbacks in one transaction (the HTTP answer waits for it)."""
        now = self.clock()
        rows = [{"send_id": i.send_id, "event": i.event, "event_time": i.event_time,
                 "addresses": "\n".join(i.addresses), "count": len(i.addresses),
                 "received_at": now} for i in items]
        async with self.db.write() as session:
            await session.execute(insert(CallbackInbox), rows)

    async def record_callback_problem(self, kind: str, send_id: int | None, detail: str) -> None:
        async with self.db.write() as session:
            session.add(CallbackProblem(kind=kind, send_id=send_id, detail=detail[:2000],
                                        received_at=self.clock()))

    async def inbox_backlog(self) -> int:
        async with self.db.read() as session:
            count = await session.scalar(select(func.count()).select_from(CallbackInbox)
                                         .where(CallbackInbox.processed_at.is_(None)))
            return int(count or 0)

    async def process_inbox(self, send_ids: Sequence[int] | None = None, limit: int = 50
                            ) -> int:
        """Turn stored callbacks into interactions; returns how many callbacks it handled.

        Each address maps back to its customers through the send's recipients; each
        (send, customer, event, day) is stored once however often it is heard. Unknown
        addresses are kept as problems, never dropped silently.
        """
        async with self.db.write() as session:
            query = (select(CallbackInbox).where(CallbackInbox.processed_at.is_(None))
                     .order_by(CallbackInbox.id).limit(limit))
            if send_ids is not None:
                query = query.where(CallbackInbox.send_id.in_(list(send_ids)))
            items = _within_budget(list(await session.scalars(query)))
            if not items:
                return 0
            known = set(await session.scalars(select(Send.id).where(
                Send.id.in_({i.send_id for i in items}))))
            now = self.clock()
            interactions: list[dict[str, object]] = []
            for item in items:
                if item.send_id not in known:
                    session.add(CallbackProblem(kind="unknown_send", send_id=item.send_id,
                                                detail=f"{item.event} x{item.count}",
                                                received_at=now))
                    continue
                interactions.extend(await self._interactions_of(session, item, now))
            await self.insert_many_ignoring(session, Interaction, interactions)
            await session.execute(update(CallbackInbox)
                                  .where(CallbackInbox.id.in_([i.id for i in items]))
                                  .values(processed_at=now))
            return len(items)

    async def _interactions_of(self, session: AsyncSession, item: CallbackInbox, now: float
                               ) -> list[dict[str, object]]:
        addresses = item.addresses.split("\n") if item.addresses else []
        customers: dict[str, list[str]] = defaultdict(list)
        for part in chunks(sorted(set(addresses)), 900):
            rows = await session.execute(
                select(Recipient.address, Recipient.customer_id)
                .where(Recipient.send_id == item.send_id, Recipient.address.in_(list(part))))
            for address, customer_id in rows:
                if address is not None:
                    customers[address].append(customer_id)
        unknown = [a for a in set(addresses) if a not in customers]
        for address in unknown:
            session.add(CallbackProblem(
                kind="unknown_address", send_id=item.send_id,
                detail=f"{item.event}: {address}", received_at=now))
        day = dt.datetime.fromtimestamp(item.event_time, dt.UTC).date()
        event = Event(item.event)
        heard = {c for address in set(addresses) for c in customers.get(address, ())}
        if event in SENT_PROOF and heard:
            late = await self._dropped_among(session, item.send_id, heard)
            for customer_id in sorted(late):
                session.add(CallbackProblem(
                    kind="late", send_id=item.send_id, received_at=now,
                    detail=f"{event} for customer {customer_id}, already reported Dropped"))
            heard -= late
        return [{"send_id": item.send_id, "customer_id": c, "event": event, "day": day,
                 "created_at": now} for c in heard]

    async def _dropped_among(self, session: AsyncSession, send_id: int,
                             customers: set[str]) -> set[str]:
        dropped: set[str] = set()
        for part in chunks(sorted(customers), 900):
            dropped.update(await session.scalars(select(Interaction.customer_id).where(
                Interaction.send_id == send_id, Interaction.event == Event.DROPPED,
                Interaction.customer_id.in_(list(part)))))
        return dropped

    async def last_callback_at(self, send_id: int) -> float | None:
        """When the newest callback of a send arrived (None before the first)."""
        async with self.db.read() as session:
            found = await session.scalar(select(func.max(CallbackInbox.received_at))
                                         .where(CallbackInbox.send_id == send_id))
            return None if found is None else float(found)

    async def problem_counts(self) -> dict[str, int]:
        async with self.db.read() as session:
            rows = await session.execute(select(CallbackProblem.kind, func.count())
                                         .group_by(CallbackProblem.kind))
            return {kind: int(n) for kind, n in rows}
