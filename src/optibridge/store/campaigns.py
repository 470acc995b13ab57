"""Notifications, campaigns, their audience (sends and recipients) and execution progress."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Select, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from optibridge.domain import (
    FINAL_SEND_STATES,
    AudienceEntry,
    AudiencePage,
    CampaignRecord,
    CampaignStage,
    ChannelType,
    Event,
    NotificationRecord,
    RecipientRow,
    SendRecord,
    SendState,
)
from optibridge.store.base import StoreBase
from optibridge.store.db import Turn
from optibridge.store.recipients import RecipientRows, recipient_rows
from optibridge.store.schema import Campaign, Interaction, Notification, Recipient, Send


def upload_chunk(send_id: int, after_id: int, limit: int, *, sqlite: bool
                 ) -> Select[int, str, str | None, str]:
    """A send's next ``limit`` recipients with an address after ``after_id``, in id order.

    The only plan without a sort is the walk of the primary key from ``after_id``. Left to
    choose, both databases took the send's index instead and read and sorted every
    recipient of the send, per chunk: PostgreSQL (a send's fresh recipients are not
    analyzed yet, so ``enable_sort`` is turned off for it) 0.4 s a chunk at 1,000,000
    recipients instead of 5 ms, SQLite (``ix_recipient_address``) most of the service's
    time in an upload. On SQLite ``send_id + 0`` keeps every index off that term.
    """
    of_send = (Recipient.send_id + 0 if sqlite else Recipient.send_id) == send_id
    fields = func.coalesce(Recipient.fields, "{}")  # the platform takes no fields as {}
    return (select(Recipient.id, Recipient.customer_id, Recipient.address, fields)
            .where(of_send, Recipient.id > after_id, Recipient.address.is_not(None))
            .order_by(Recipient.id).limit(limit))


def _campaign(row: Campaign) -> CampaignRecord:
    return CampaignRecord(id=row.id, tenant=row.tenant, campaign_id=row.campaign_id,
                          channel_id=row.channel_id, stage=CampaignStage(row.state),
                          next_skip=row.next_skip, pulled=row.pulled, triggered=row.triggered)


async def find_or_add_campaign(session: AsyncSession, tenant: str, campaign_id: int,
                               channel_id: int, *, triggered: bool, now: float
                               ) -> tuple[Campaign, bool]:
    """The campaign's row in this transaction, added (its pull not begun) if it is new."""
    found = await session.scalar(select(Campaign).where(
        Campaign.tenant == tenant, Campaign.campaign_id == campaign_id,
        Campaign.channel_id == channel_id))
    if found is not None:
        return found, False
    row = Campaign(tenant=tenant, campaign_id=campaign_id, channel_id=channel_id,
                   triggered=triggered, state=CampaignStage.PULLING, next_skip=0, pulled=0,
                   created_at=now)
    session.add(row)
    await session.flush()
    return row, True


def _send(row: Send, campaign: Campaign) -> SendRecord:
    return SendRecord(
        id=row.id, campaign_pk=campaign.id, tenant=campaign.tenant,
        campaign_id=campaign.campaign_id, channel_id=campaign.channel_id,
        channel_type=ChannelType(row.channel_type), template_id=row.template_id,
        scheduled_time=row.scheduled_time, state=SendState(row.state),
        recipients=row.recipients, list_id=row.list_id, uploaded_through=row.uploaded_through,
        platform_campaign_id=row.platform_campaign_id, platform_state=row.platform_state,
        ready_at=row.ready_at, checked_at=row.checked_at, finished_at=row.finished_at)


class CampaignStore(StoreBase):
    # --- notifications -------------------------------------------------------------
    async def record_notification(self, tenant: str, event_type: int, campaign_id: int | None,
                                  channel_id: int | None, payload: dict[str, Any]) -> int:
        async with self.db.write(turn=Turn.URGENT) as session:
            row = Notification(tenant=tenant, event_type=event_type, campaign_id=campaign_id,
                               channel_id=channel_id, payload=json.dumps(payload),
                               received_at=self.clock())
            session.add(row)
            await session.flush()
            return row.id

    async def pending_notifications(self, tenant: str, limit: int = 100,
                                    excluding: Sequence[int] = ()
                                    ) -> list[NotificationRecord]:
        """The oldest unhandled notifications, but for ``excluding`` (failed ones that
        back off or wait for an operator: they must not fill the page)."""
        query = (select(Notification)
                 .where(Notification.tenant == tenant, Notification.handled_at.is_(None))
                 .order_by(Notification.id).limit(limit))
        if excluding:
            query = query.where(Notification.id.not_in(list(excluding)))
        async with self.db.read() as session:
            rows = await session.scalars(query)
            return [NotificationRecord(id=r.id, tenant=r.tenant, event_type=r.event_type,
                                       campaign_id=r.campaign_id, channel_id=r.channel_id,
                                       payload=r.payload) for r in rows]

    async def mark_notification(self, notification_id: int, outcome: str) -> None:
        async with self.db.write() as session:
            await session.execute(update(Notification).where(Notification.id == notification_id)
                                  .values(handled_at=self.clock(), outcome=outcome[:200]))

    # --- campaigns -----------------------------------------------------------------
    async def open_campaign(self, tenant: str, campaign_id: int, channel_id: int,
                            triggered: bool = False) -> tuple[CampaignRecord, bool]:
        """The campaign's record, created on first sight; ``True`` when it is new."""
        async with self.db.write() as session:
            row, created = await find_or_add_campaign(session, tenant, campaign_id, channel_id,
                                                      triggered=triggered, now=self.clock())
            return _campaign(row), created

    async def campaigns_in(self, tenant: str, state: CampaignStage) -> list[CampaignRecord]:
        async with self.db.read() as session:
            rows = await session.scalars(select(Campaign).where(
                Campaign.tenant == tenant, Campaign.state == state,
                Campaign.triggered.is_(False)).order_by(Campaign.id))
            return [_campaign(r) for r in rows]

    async def get_campaign(self, tenant: str, campaign_id: int, channel_id: int
                           ) -> CampaignRecord | None:
        async with self.db.read() as session:
            row = await session.scalar(select(Campaign).where(
                Campaign.tenant == tenant, Campaign.campaign_id == campaign_id,
                Campaign.channel_id == channel_id))
            return None if row is None else _campaign(row)

    async def set_campaign_status(self, campaign_pk: int, status: CampaignStage) -> None:
        async with self.db.write() as session:
            await session.execute(update(Campaign).where(Campaign.id == campaign_pk)
                                  .values(state=status))

    async def store_audience_page(self, campaign_pk: int, channel_type: str, skip: int,
                                  entries: AudiencePage | Sequence[AudienceEntry],
                                  last_page: bool) -> bool:
        """Store one page and the resume point in one transaction: a crash repeats the
        page at most, and the unique keys make the repeat a no-op."""
        page = entries if isinstance(entries, AudiencePage) else AudiencePage.of(entries)
        async with self.db.write(turn=Turn.CAMPAIGN) as session:
            current = await session.get(Campaign, campaign_pk)
            if current is None or current.state != CampaignStage.PULLING:
                return False  # cancelled meanwhile
            if current.next_skip != skip:
                return False  # stored already (a repeat after a crash or a takeover)
            send_ids = await self._sends_for(session, campaign_pk, channel_type, page)
            await self._add_page_recipients(session, send_ids, page)
            current.next_skip = skip + len(page)
            current.pulled = current.pulled + len(page)
            if last_page:
                current.state = CampaignStage.PULLED
                current.pulled_at = self.clock()
                await self._count_recipients(session, campaign_pk)
        if (skip == 0 or last_page) and not self.db.sqlite:
            await self._analyze_recipients()
        return True

    async def _analyze_recipients(self) -> None:
        """PostgreSQL: fresh statistics for the recipients a pull added (a sample of
        30,000 rows, about 0.2 s at 1,000,000), after its first page and after its last.

        After the first: statistics taken before a campaign's sends had rows say they have
        none, and the next page's address check (``_addresses_taken``) was then planned as
        a scan of the send's rows once for every address of the page: a second campaign's
        pull stood still at its 13th page, the check running for minutes. After the last:
        what reads the sends next (uploads, callback mapping, Dropped) is planned for
        their real size; autovacuum would come to it only a minute or more later. After
        the page's commit, so the page's write transaction is not held for it."""
        async with self.db.write() as session:
            await session.execute(text("ANALYZE recipient"))

    async def _add_page_recipients(self, session: AsyncSession,
                                   send_ids: dict[tuple[int, dt.datetime], int],
                                   page: AudiencePage) -> None:
        """The page's recipients and Dropped. An address an earlier page's customer holds
        is read first (one set-based read); a customer an earlier page stored is found by
        the insert (the send's unique customer key), and only then are the page's
        customers read back, so that one stored with an address gets no Dropped."""
        now = self.clock()
        days = {when: when.date() for _, when in send_ids}
        sends = list(map(send_ids.__getitem__, page.send_keys()))
        taken = await self._addresses_taken(session, sends, page.addresses)
        rows = recipient_rows(zip(sends, page.customer_ids, page.addresses, page.fields,
                                  map(days.__getitem__, page.scheduled_times), strict=True),
                              now, taken)
        inserted = await self.insert_many_new(session, Recipient, rows.recipients)
        dropped = rows.dropped
        if inserted < len(rows.recipients):
            dropped = await self._dropped_of_stored(session, rows, now)
        await self.insert_many_ignoring(session, Interaction, dropped)

    async def _addresses_taken(self, session: AsyncSession, sends: Sequence[int],
                               addresses: Sequence[str | None]) -> set[tuple[int, str]]:
        """The (send, address) pairs of this page that earlier pages' customers hold
        (``sends`` and ``addresses``: each entry's, in the page's order).

        Each send is asked for its own customers' addresses only: asked for every address
        of the page, a page of four sends looked each address up four times (on
        PostgreSQL a fifth of a pull's time, in the 1,000,000-customer campaign)."""
        wanted: dict[int, set[str]] = {}
        for send_id, address in zip(sends, addresses, strict=True):
            if address:
                wanted.setdefault(send_id, set()).add(address)
        taken: set[tuple[int, str]] = set()
        for send_id, held in wanted.items():
            found = await session.execute(self.addresses_held({send_id}, sorted(held)))
            taken.update((send, address) for send, address in found if address)
        return taken

    def addresses_held(self, send_ids: set[int], addresses: Sequence[str]
                       ) -> Select[int, str | None]:
        """Which of ``addresses`` the sends' recipients hold, as (send, address)."""
        return select(Recipient.send_id, Recipient.address).where(
            Recipient.send_id.in_(send_ids), self.one_of(Recipient.address, addresses))

    async def _dropped_of_stored(self, session: AsyncSession, rows: RecipientRows,
                                 now: float) -> list[dict[str, Any]]:
        """After an insert that skipped customers an earlier page stored: the Dropped of
        the page's customers as stored, those without an address (an earlier page's row
        wins; Dropped twice is once)."""
        without = {(send_id, customer) for send_id, customer in await session.execute(
            select(Recipient.send_id, Recipient.customer_id).where(
                Recipient.send_id.in_({r["send_id"] for r in rows.recipients}),
                self.one_of(Recipient.customer_id,
                            sorted({r["customer_id"] for r in rows.recipients})),
                Recipient.address.is_(None)))}
        return rows.dropped_of(without, now)

    async def _sends_for(self, session: Any, campaign_pk: int, channel_type: str,
                         page: AudiencePage) -> dict[tuple[int, dt.datetime], int]:
        keys = set(page.send_keys())
        rows = await session.execute(select(Send.id, Send.template_id, Send.scheduled_time)
                                     .where(Send.campaign_pk == campaign_pk))
        known = {(t, s): i for i, t, s in rows}
        for template_id, scheduled_time in sorted(keys - known.keys()):
            send = Send(campaign_pk=campaign_pk, template_id=template_id,
                        scheduled_time=scheduled_time, channel_type=channel_type,
                        state=SendState.NEW, created_at=self.clock())
            session.add(send)
            await session.flush()
            known[(template_id, scheduled_time)] = send.id
        return known

    async def _count_recipients(self, session: Any, campaign_pk: int) -> None:
        counts = await session.execute(
            select(Recipient.send_id, func.count()).join(Send, Send.id == Recipient.send_id)
            .where(Send.campaign_pk == campaign_pk).group_by(Recipient.send_id))
        for send_id, count in counts:
            await session.execute(update(Send).where(Send.id == send_id)
                                  .values(recipients=count))

    # --- sends -----------------------------------------------------------------------
    async def sends(self, tenant: str, states: Sequence[SendState],
                    campaign_pk: int | None = None, *, live_only: bool = False
                    ) -> list[SendRecord]:
        """Sends of pulled (or triggered) campaigns in ``states``; ``live_only`` leaves out
        those of cancelled campaigns."""
        excluded = [CampaignStage.PULLING, *([CampaignStage.CANCELLED] if live_only else [])]
        query = (select(Send, Campaign).join(Campaign, Campaign.id == Send.campaign_pk)
                 .where(Campaign.tenant == tenant, Send.state.in_(list(states)),
                        Campaign.state.not_in([str(e) for e in excluded])))
        if campaign_pk is not None:
            query = query.where(Campaign.id == campaign_pk)
        async with self.db.read() as session:
            rows = await session.execute(query.order_by(Send.id))
            return [_send(s, c) for s, c in rows]

    async def sends_being_pulled(self, tenant: str, states: Sequence[SendState]
                                 ) -> list[SendRecord]:
        """Sends in ``states`` of campaigns whose audience is still being pulled (not
        triggered, not cancelled): their recipients so far may be uploaded, their list is
        complete only once the campaign is PULLED."""
        query = (select(Send, Campaign).join(Campaign, Campaign.id == Send.campaign_pk)
                 .where(Campaign.tenant == tenant, Campaign.state == CampaignStage.PULLING,
                        Campaign.triggered.is_(False), Send.state.in_(list(states))))
        async with self.db.read() as session:
            rows = await session.execute(query.order_by(Send.id))
            return [_send(s, c) for s, c in rows]

    async def campaign_stage(self, campaign_pk: int) -> CampaignStage | None:
        async with self.db.read() as session:
            state = await session.scalar(select(Campaign.state)
                                         .where(Campaign.id == campaign_pk))
            return None if state is None else CampaignStage(state)

    async def get_send(self, send_id: int) -> SendRecord | None:
        async with self.db.read() as session:
            row = (await session.execute(
                select(Send, Campaign).join(Campaign, Campaign.id == Send.campaign_pk)
                .where(Send.id == send_id))).first()
            return None if row is None else _send(row[0], row[1])

    async def update_send(self, send_id: int, **values: Any) -> None:
        """Record facts about a send that do not move its state (times, platform state)."""
        await self.write_statement(update(Send).where(Send.id == send_id).values(**values))

    async def advance_send(self, send_id: int, expect: SendState, **values: Any) -> bool:
        """Record one step of a send's execution, only if it is still in ``expect`` (a
        cancellation may have moved it meanwhile); False if it was not."""
        return bool(await self.write_statement(update(Send).where(
            Send.id == send_id, Send.state == expect).values(**values), turn=Turn.CAMPAIGN))

    async def recipients_to_upload(self, send_id: int, after_id: int, limit: int
                                   ) -> list[RecipientRow]:
        async with self.db.read() as session:
            if not self.db.sqlite:
                # PostgreSQL's side of ``upload_chunk``'s plan (see there).
                await session.execute(text("SET LOCAL enable_sort = off"))
            # Through the connection, not the ORM session: the rows come as plain tuples,
            # without the ORM's per-row loading (most of a chunk read's 35 ms on SQLite).
            connection = await session.connection()
            rows = await connection.execute(
                upload_chunk(send_id, after_id, limit, sqlite=self.db.sqlite))
            return list(map(RecipientRow._make, rows))

    async def mark_uploaded(self, send: SendRecord, through_id: int,
                            rejected: Sequence[tuple[str, str]]) -> None:
        """Advance the upload point; customers the platform refused become Dropped."""
        now = self.clock()
        dropped = [{"send_id": send.id, "customer_id": customer_id,
                    "event": str(Event.DROPPED), "day": send.scheduled_time.date(),
                    "created_at": now} for customer_id, _ in rejected]
        insert = self.insert_ignoring_duplicates(Interaction)

        def mark(connection: Connection) -> None:
            if dropped:  # rarely any: the platform refused these contacts
                connection.execute(insert, dropped)
            connection.execute(update(Send).where(Send.id == send.id)
                               .values(uploaded_through=through_id))
        await self.db.write_driver(mark, turn=Turn.CAMPAIGN)

    async def drop_unsent(self, send: SendRecord, sent_events: Sequence[Event]) -> int:
        """Report as Dropped every recipient with an address and none of ``sent_events``
        (the proof that the platform sent to them)."""
        async with self.db.write() as session:
            return await drop_unsent_in(self, session, send, sent_events)

    async def open_sends(self, tenant: str) -> list[SendRecord]:
        states = [s for s in SendState if s not in FINAL_SEND_STATES]
        return await self.sends(tenant, states)


async def drop_unsent_in(store: StoreBase, session: AsyncSession, send: SendRecord,
                         sent_events: Sequence[Event]) -> int:
    """``drop_unsent`` inside the caller's transaction."""
    proven = select(Interaction.customer_id).where(
        Interaction.send_id == send.id,
        Interaction.event.in_([*(str(e) for e in sent_events), str(Event.DROPPED)]))
    # EXCEPT is always a hash or sort set operation. A correlated NOT EXISTS let
    # PostgreSQL, on tables not yet analyzed (a fresh campaign's), pick a nested loop
    # that ran for minutes over a 100,000-recipient send.
    customers = (await session.scalars(select(Recipient.customer_id).where(
        Recipient.send_id == send.id, Recipient.address.is_not(None)).except_(proven))).all()
    now = store.clock()
    rows = [{"send_id": send.id, "customer_id": c, "event": Event.DROPPED,
             "day": send.scheduled_time.date(), "created_at": now} for c in customers]
    await store.insert_many_ignoring(session, Interaction, rows)
    return len(rows)
