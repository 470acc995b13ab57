"""Triggers (EventTypeID 11) gathered into sends, and the template ID map."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, Row, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from optibridge.domain import NewTrigger, SendState, TriggerGroup
from optibridge.store.base import StoreBase, chunks
from optibridge.store.db import Turn
from optibridge.store.recipients import recipient_rows
from optibridge.store.schema import Interaction, Recipient, Send, TemplateMap, Trigger

OPTIMOVE_MAX_ID = 2**31 - 1  # Optimove's TemplateID is a 32-bit integer
MAPPED_IDS_FROM = 2_000_000_000  # where IDs for non-integer platform templates start


class TemplateIdConflict(ValueError):
    """Two platform templates would get the same Optimove TemplateID."""


@dataclass(frozen=True)
class Gathered:
    send_id: int
    recipients: int
    without_address: int
    deferred: int  # the same customer again in this gather: left for the next one
    scheduled_time: dt.datetime = field(compare=False)
    repeats: int = 0  # identical to a trigger recorded within the repeat window: not sent


def _as_optimove_id(platform_id: str) -> int | None:
    """The platform's ID itself when it is an integer Optimove accepts."""
    text = platform_id.strip()
    if text.isdigit() and 0 < int(text) <= OPTIMOVE_MAX_ID and str(int(text)) == text:
        return int(text)
    return None


def _by_first(repeats: Mapping[int, int]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for repeat, first in repeats.items():
        found.setdefault(first, []).append(repeat)
    return found


# The IDs come back in the rows' order (each answer gets its own trigger's).
TRIGGER_INSERT = insert(Trigger).returning(Trigger.id, sort_by_parameter_order=True)


class TriggerStore(StoreBase):
    async def record_triggers(self, items: Sequence[NewTrigger]) -> list[int]:
        """Store triggers in one transaction (each HTTP answer waits for it); their IDs.
        One Core statement on the driver's thread: the ORM's unit of work cost more than
        the insert, on the write connection every other writer waits for."""
        if not items:
            return []
        now = self.clock()
        rows = [{"tenant": t.tenant, "campaign_id": t.campaign_id,
                 "channel_id": t.channel_id, "template_id": t.template_id,
                 "customer_id": t.customer_id, "action_id": t.action_id,
                 "trigger_name": t.trigger_name, "address": t.address,
                 "fields": json.dumps(dict(t.fields)) if t.fields else None,
                 "payload": t.payload, "fingerprint": t.fingerprint, "received_at": now}
                for t in items]

        def insert_rows(connection: Connection) -> list[int]:
            return list(connection.execute(TRIGGER_INSERT, rows).scalars())
        return await self.db.write_driver(insert_rows, turn=Turn.URGENT)

    async def pending_trigger_groups(self, tenant: str) -> list[TriggerGroup]:
        async with self.db.read() as session:
            rows = await session.execute(
                select(Trigger.campaign_id, Trigger.channel_id, Trigger.template_id,
                       func.count(), func.min(Trigger.received_at))
                .where(Trigger.tenant == tenant, Trigger.send_id.is_(None),
                       Trigger.repeat_of.is_(None))
                .group_by(Trigger.campaign_id, Trigger.channel_id, Trigger.template_id)
                .order_by(func.min(Trigger.received_at)))
            return [TriggerGroup(c, ch, t, int(n), float(o)) for c, ch, t, n, o in rows]

    async def gather_triggers(self, tenant: str, campaign_pk: int, group: TriggerGroup,
                              channel_type: str, when: dt.datetime, limit: int,
                              repeat_window: float = 0.0) -> Gathered | None:
        """Turn up to ``limit`` pending triggers of ``group`` into one NEW send due at
        ``when``, in one transaction: one recipient per customer, the rest wait; a trigger
        identical to one recorded up to ``repeat_window`` seconds before it is marked as
        that one's repeat and never sent. None when nothing is left to send."""
        async with self.db.write() as session:
            rows = (await session.execute(
                select(Trigger.id, Trigger.customer_id, Trigger.address, Trigger.fields,
                       Trigger.fingerprint, Trigger.received_at)
                .where(Trigger.tenant == tenant, Trigger.campaign_id == group.campaign_id,
                       Trigger.channel_id == group.channel_id,
                       Trigger.template_id == group.template_id, Trigger.send_id.is_(None),
                       Trigger.repeat_of.is_(None))
                .order_by(Trigger.id).limit(limit))).all()
            repeats = await self._repeats(session, tenant, rows, repeat_window)
            for first, repeated in _by_first(repeats).items():
                for part in chunks(repeated, 900):
                    await session.execute(update(Trigger).where(Trigger.id.in_(list(part)))
                                          .values(repeat_of=first))
            chosen: dict[str, tuple[int, str | None, str | None]] = {}
            for trigger_id, customer_id, address, fields, _, _ in rows:
                if trigger_id not in repeats:
                    chosen.setdefault(customer_id, (trigger_id, address, fields))
            if not chosen:
                return None
            when = await self._free_time(session, campaign_pk, group.template_id, when)
            send = Send(campaign_pk=campaign_pk, template_id=group.template_id,
                        scheduled_time=when, channel_type=channel_type, state=SendState.NEW,
                        recipients=len(chosen), created_at=self.clock())
            session.add(send)
            await session.flush()
            missing = await self._add_recipients(session, send.id, when, chosen)
            for part in chunks([t for t, _, _ in chosen.values()], 900):
                await session.execute(update(Trigger).where(Trigger.id.in_(list(part)))
                                      .values(send_id=send.id))
            return Gathered(send.id, len(chosen), missing,
                            len(rows) - len(chosen) - len(repeats), when, len(repeats))

    async def _repeats(self, session: AsyncSession, tenant: str,
                       rows: Sequence[Row[int, str, str | None, str | None, str | None,
                                          float]],
                       window: float) -> dict[int, int]:
        """Repeat -> the trigger it repeats: the earliest one with its fingerprint, not a
        repeat itself, recorded up to ``window`` seconds before it (gathered or not)."""
        prints = sorted({r[4] for r in rows if r[4]})
        if window <= 0 or not prints:
            return {}
        since = min(r[5] for r in rows) - window
        earlier = (await session.execute(
            select(Trigger.id, Trigger.fingerprint, Trigger.received_at)
            .where(Trigger.tenant == tenant, self.one_of(Trigger.fingerprint, prints),
                   Trigger.repeat_of.is_(None), Trigger.received_at >= since)
            .order_by(Trigger.id))).all()
        originals: dict[str, list[tuple[int, float]]] = {}
        for trigger_id, fingerprint, received_at in earlier:
            originals.setdefault(fingerprint or "", []).append((trigger_id, received_at))
        repeats: dict[int, int] = {}
        for trigger_id, _, _, _, fingerprint, received_at in rows:
            first = next((o for o, at in originals.get(fingerprint or "", [])
                          if o < trigger_id and o not in repeats
                          and at >= received_at - window), None)
            if fingerprint and first is not None:
                repeats[trigger_id] = first
        return repeats

    async def _free_time(self, session: AsyncSession, campaign_pk: int, template_id: int,
                         when: dt.datetime) -> dt.datetime:
        """``when``, or just after the latest send of this template (the send identity is
        (campaign, template, scheduled time))."""
        latest = await session.scalar(select(func.max(Send.scheduled_time)).where(
            Send.campaign_pk == campaign_pk, Send.template_id == template_id))
        if latest is not None and latest >= when:
            return latest + dt.timedelta(microseconds=1)
        return when

    async def _add_recipients(self, session: AsyncSession, send_id: int, when: dt.datetime,
                              chosen: Mapping[str, tuple[int, str | None, str | None]]
                              ) -> int:
        """The new send's recipients and Dropped; how many have no address."""
        day = when.date()
        rows = recipient_rows(((send_id, customer, address, fields, day)
                               for customer, (_, address, fields) in chosen.items()),
                              self.clock())
        await self.insert_many_ignoring(session, Recipient, rows.recipients)
        await self.insert_many_ignoring(session, Interaction, rows.dropped)
        return len(rows.dropped)

    async def trigger_counts(self, tenant: str) -> tuple[int, int]:
        """(triggers recorded, triggers still waiting to be gathered)."""
        async with self.db.read() as session:
            total, pending = (await session.execute(
                select(func.count(), func.count().filter(Trigger.send_id.is_(None),
                                                         Trigger.repeat_of.is_(None)))
                .where(Trigger.tenant == tenant))).one()
            return int(total), int(pending)

    async def trigger_sends(self, tenant: str) -> dict[int, list[str]]:
        """Customers per send of this tenant's gathered triggers."""
        async with self.db.read() as session:
            rows = await session.execute(
                select(Trigger.send_id, Trigger.customer_id)
                .where(Trigger.tenant == tenant, Trigger.send_id.is_not(None))
                .order_by(Trigger.id))
            found: dict[int, list[str]] = {}
            for send_id, customer in rows:
                found.setdefault(int(send_id or 0), []).append(customer)
            return found

    # --- template IDs --------------------------------------------------------------------
    async def template_ids(self, tenant: str, platform_ids: Sequence[str]) -> dict[str, int]:
        """The stable Optimove TemplateID of each platform template ID, stored on first use:
        the ID itself when it is an integer Optimove accepts, else a new one."""
        async with self.db.write() as session:
            known = {p: o for p, o in await session.execute(
                select(TemplateMap.platform_id, TemplateMap.optimove_id)
                .where(TemplateMap.tenant == tenant))}
            taken = set(known.values())
            next_free = max([MAPPED_IDS_FROM - 1, *taken]) + 1
            now = self.clock()
            for platform_id in platform_ids:
                if platform_id in known:
                    continue
                optimove_id = _as_optimove_id(platform_id)
                if optimove_id is None:
                    optimove_id, next_free = next_free, next_free + 1
                if optimove_id in taken:
                    raise TemplateIdConflict(
                        f"platform template {platform_id!r} would get TemplateID "
                        f"{optimove_id}, which another platform template already has")
                session.add(TemplateMap(tenant=tenant, platform_id=platform_id,
                                        optimove_id=optimove_id, created_at=now))
                known[platform_id] = optimove_id
                taken.add(optimove_id)
            return {p: known[p] for p in platform_ids}
