"""The tables. Times are Unix seconds (float) unless a column is a calendar date.

Words: a *campaign* is Optimove's campaign on one channel; a *send* is one template and send
time of it, executed as one platform campaign; a *recipient* is a customer of a send; an
*interaction* is one (send, customer, event, day), stored once; a *report batch* is one
UpdateCampaignInteractions call, with an identity and a state.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    literal_column,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Notification(Base):
    """An Optimove listener call, recorded before we answer it."""

    __tablename__ = "notification"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[int] = mapped_column(Integer)
    campaign_id: Mapped[int | None] = mapped_column(BigInteger)
    channel_id: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[float] = mapped_column(Float)
    handled_at: Mapped[float | None] = mapped_column(Float)
    outcome: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        Index("ix_notification_pending", "tenant", "handled_at"),
    )


class Campaign(Base):
    """One Optimove campaign on one channel, and how far its audience pull has come."""

    __tablename__ = "campaign"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    campaign_id: Mapped[int] = mapped_column(BigInteger)
    channel_id: Mapped[int] = mapped_column(Integer)
    triggered: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16))  # pulling, pulled, cancelled
    next_skip: Mapped[int] = mapped_column(BigInteger, default=0)
    pulled: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    pulled_at: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        UniqueConstraint("tenant", "campaign_id", "channel_id", name="uq_campaign_identity"),
        Index("ix_campaign_state", "tenant", "state"),
    )


class Send(Base):
    """One template and send time of a campaign, executed as one platform campaign."""

    __tablename__ = "send"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    campaign_pk: Mapped[int] = mapped_column(ForeignKey("campaign.id"))
    template_id: Mapped[int] = mapped_column(BigInteger)
    scheduled_time: Mapped[dt.datetime] = mapped_column(DateTime)  # naive UTC
    channel_type: Mapped[str] = mapped_column(String(8))
    # new -> listed -> uploaded -> created -> ready -> done | error | cancelled
    state: Mapped[str] = mapped_column(String(16), default="new")
    recipients: Mapped[int] = mapped_column(BigInteger, default=0)
    list_id: Mapped[int | None] = mapped_column(BigInteger)
    uploaded_through: Mapped[int] = mapped_column(BigInteger, default=0)  # last recipient.id
    platform_campaign_id: Mapped[int | None] = mapped_column(BigInteger)
    platform_state: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)
    ready_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    checked_at: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("campaign_pk", "template_id", "scheduled_time",
                         name="uq_send_identity"),
        Index("ix_send_state", "state"),
    )


class Recipient(Base):
    __tablename__ = "recipient"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # This foreign key and interaction.send_id's are SQLite's alone (migration 0017): on
    # PostgreSQL the per-row check was a quarter of storing an audience page.
    send_id: Mapped[int] = mapped_column(ForeignKey("send.id"))
    customer_id: Mapped[str] = mapped_column(String(128))
    address: Mapped[str | None] = mapped_column(String(320))
    fields: Mapped[str | None] = mapped_column(Text)  # JSON object of personalization values

    __table_args__ = (
        UniqueConstraint("send_id", "customer_id", name="uq_recipient_identity"),
        # A send's address is one recipient's (the platform's list holds it once), kept by
        # the store, not by a unique index: with ON CONFLICT, SQLite and PostgreSQL check
        # each unique index before the insert and again in it, which cost more than the
        # page's one read of the addresses earlier pages hold (migration 0018).
        Index("ix_recipient_address", "send_id", "address"),
    )


# The events a report batch takes (Optimove's interactions), written out so that a
# query can name them in so many words: neither planner matches a partial index's
# condition to a parameter.
REPORTED_EVENTS = "event IN ('opened', 'clicked', 'bounced', 'dropped')"
UNREPORTED = f"batch_id IS NULL AND {REPORTED_EVENTS}"
DROPPED_ONLY = "event = 'dropped'"


class Interaction(Base):
    """One (send, customer, event, day), stored once however often it is heard."""

    __tablename__ = "interaction"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    send_id: Mapped[int] = mapped_column(ForeignKey("send.id"))
    customer_id: Mapped[str] = mapped_column(String(128))
    event: Mapped[str] = mapped_column(String(16))  # submitted delivered opened ...
    day: Mapped[dt.date] = mapped_column(Date)
    # A report batch's ID. Its foreign key is SQLite's alone (migration 0015): on
    # PostgreSQL the per-row check was a quarter of forming a batch, and guarded nothing.
    batch_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        UniqueConstraint("send_id", "customer_id", "event", "day",
                         name="uq_interaction_identity"),
        # Only what report batches take: submitted and delivered never get a batch, and
        # would otherwise stay in this index (and in batch forming's scan) forever.
        # It ends with the id: a batch takes a group's oldest in id order from it.
        Index("ix_interaction_unreported", "send_id", "event", "day", "id",
              sqlite_where=text(UNREPORTED), postgresql_where=text(UNREPORTED)),
        # With the id: a batch's customers in id order come from it (migration 0016).
        Index("ix_interaction_batch", "batch_id", "id"),
        # Only the reported events: a read-back's probe looks a customer's reports up
        # here (``clear_customers``). Submitted and delivered, most of a campaign's rows,
        # are left out (migration 0020): at millions of rows each was a random insert,
        # about a third of an interaction's insert.
        Index("ix_interaction_customer", "customer_id",
              sqlite_where=text(REPORTED_EVENTS), postgresql_where=text(REPORTED_EVENTS)),
        # A send's Dropped customers, few beside its other interactions: what mapping's
        # late check starts from (migration 0019). A query uses it only where it says
        # ``event = 'dropped'`` in so many words (``is_dropped``), not as a parameter.
        Index("ix_interaction_dropped", "send_id", "customer_id",
              sqlite_where=text(DROPPED_ONLY), postgresql_where=text(DROPPED_ONLY)),
    )


# ``Interaction.event`` is Dropped, written out so that the planners take
# ix_interaction_dropped (neither matches a partial index's condition to a parameter).
is_dropped = Interaction.event == literal_column("'dropped'")


class ReportBatch(Base):
    """One UpdateCampaignInteractions call: pending -> sending -> sent, or in_doubt (read
    back, then sent or pending again), or dead_letter (a 400 about its content)."""

    __tablename__ = "report_batch"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    campaign_id: Mapped[int] = mapped_column(BigInteger)
    channel_id: Mapped[int] = mapped_column(Integer)
    template_id: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[int] = mapped_column(Integer)
    recipient_group_id: Mapped[int] = mapped_column(Integer, default=1)
    interaction_date: Mapped[dt.date] = mapped_column(Date)
    size: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)  # Optimove's body when it refused it
    epoch: Mapped[int | None] = mapped_column(BigInteger)  # lease epoch of the last change
    # The call it is for, fixed when it is formed: a tenant switched to another backend
    # still sends, resolves and requeues its older batches by theirs (nothing twice).
    backend: Mapped[str] = mapped_column(String(24), default="interactions",
                                         server_default="interactions")
    # saveEvent batches: the send they report (forming compares its events stored with
    # those in batches, and reads only the sends with some left). None for the others.
    send_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_report_batch_state", "tenant", "state"),
                      Index("ix_report_batch_send", "send_id"))


class BatchEvent(Base):
    """What happened to a report batch: each call and its outcome, each read-back, each
    operator action (who and when), so ``batches show`` can tell its story."""

    __tablename__ = "batch_event"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("report_batch.id"))
    kind: Mapped[str] = mapped_column(String(16))  # call, read_back, requeue, resolve
    actor: Mapped[str] = mapped_column(String(128))  # lease holder or operator
    state: Mapped[str | None] = mapped_column(String(16))  # the state it led to
    detail: Mapped[str | None] = mapped_column(Text)
    epoch: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_batch_event_batch", "batch_id"),)


class MetricReport(Base):
    """The last running total of one metric that Optimove accepted."""

    __tablename__ = "metric_report"
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    channel_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    template_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    metric_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)
    reported_at: Mapped[float] = mapped_column(Float)


class CallbackInbox(Base):
    """A verified platform callback, stored as received before we answer it."""

    __tablename__ = "callback_inbox"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    send_id: Mapped[int] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(16))
    event_time: Mapped[int] = mapped_column(BigInteger)
    addresses: Mapped[str] = mapped_column(Text)  # a JSON array, lowercased
    count: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[float] = mapped_column(Float)
    processed_at: Mapped[float | None] = mapped_column(Float)
    # A row the mapper could not map: tried again after ``retry_at``, then set aside.
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    retry_at: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_callback_inbox_pending", "processed_at"),
                      Index("ix_callback_inbox_send", "send_id"),
                      Index("ix_callback_inbox_received", "received_at"))


class CallbackTotal(Base):
    """Callbacks stored in the inbox and the events they carried, kept as rows are
    inserted (by a trigger the migration creates) so ``/metrics`` reads a row, not the
    inbox. Row 0 is the total; on PostgreSQL each insert statement appends a row of its
    own (no row lock shared by concurrent writers), folded into row 0 by the mapper.
    Pruning the inbox does not lower it."""

    __tablename__ = "callback_total"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    callbacks: Mapped[int] = mapped_column(BigInteger)
    events: Mapped[int] = mapped_column(BigInteger)


class CallbackProblem(Base):
    """What could not be used: a malformed signed callback, an unknown address, a late one."""

    __tablename__ = "callback_problem"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))  # malformed, unknown_address, unknown_send
    send_id: Mapped[int | None] = mapped_column(BigInteger)
    detail: Mapped[str] = mapped_column(Text)
    received_at: Mapped[float] = mapped_column(Float)
    # A problem heard again is the same row: counted, with the last time it was heard.
    count: Mapped[int] = mapped_column(Integer, server_default="1")
    last_at: Mapped[float | None] = mapped_column(Float)
    key: Mapped[str | None] = mapped_column(String(64), unique=True)


class TenantLease(Base):
    """Which process does a tenant's background work (and so its Optimove calls)."""

    __tablename__ = "tenant_lease"
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[float] = mapped_column(Float)  # the database's clock
    # Grows by one each time the lease changes hands: a write that carries an older epoch
    # comes from a holder that lost the lease and is refused.
    epoch: Mapped[int] = mapped_column(BigInteger, default=1, server_default="1")


class ApiCall(Base):
    """One call under way or recently made with an API key (by its fingerprint), so
    every process using the key (replicas, CLI commands) counts the same window."""

    __tablename__ = "api_call"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[float] = mapped_column(Float)  # the database's clock
    ended_at: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (Index("ix_api_call_key", "key", "started_at"),)


class Problem(Base):
    """An error worth showing an operator: what failed, where, and why."""

    __tablename__ = "problem"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant: Mapped[str | None] = mapped_column(String(64))
    where: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    at: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer, server_default="1")
    last_at: Mapped[float | None] = mapped_column(Float)
    key: Mapped[str | None] = mapped_column(String(64), unique=True)


class Trigger(Base):
    """One EventTypeID 11 call (a customer met a triggered campaign's criteria), recorded
    before we answer it; ``send_id`` is set when it is gathered into a send."""

    __tablename__ = "trigger"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    campaign_id: Mapped[int] = mapped_column(BigInteger)
    channel_id: Mapped[int] = mapped_column(Integer)
    template_id: Mapped[int] = mapped_column(BigInteger)
    customer_id: Mapped[str] = mapped_column(String(128))
    action_id: Mapped[int | None] = mapped_column(BigInteger)
    trigger_name: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(320))  # normalized, None: unusable
    fields: Mapped[str | None] = mapped_column(Text)  # JSON object of personalization values
    payload: Mapped[str] = mapped_column(Text)  # the raw body, as received
    received_at: Mapped[float] = mapped_column(Float)
    send_id: Mapped[int | None] = mapped_column(BigInteger)
    # What makes two triggers the same (customer, campaign, channel, template, payload),
    # and, for a repeat of one recorded within the repeat window, the first one's ID.
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    repeat_of: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_trigger_pending", "tenant", "campaign_id", "channel_id", "template_id",
              sqlite_where=text("send_id IS NULL"),
              postgresql_where=text("send_id IS NULL")),
        Index("ix_trigger_send", "send_id"),
        Index("ix_trigger_fingerprint", "tenant", "fingerprint"),
    )


class TemplateMap(Base):
    """A platform template's TemplateID in Optimove: the same number when the platform's ID
    is an integer Optimove accepts, else a stable one allocated once."""

    __tablename__ = "template_map"
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    platform_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    optimove_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        UniqueConstraint("tenant", "optimove_id", name="uq_template_map_optimove"),
    )


class Engagement(Base):
    """Where an EventTypeID 14 campaign's audience files are, and how far reading them has
    come: ``next_file`` is the file being read, whose first customer was the campaign's
    ``file_start``-th (so a restart skips what of that file is stored already)."""

    __tablename__ = "engagement"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    campaign_pk: Mapped[int] = mapped_column(ForeignKey("campaign.id"), unique=True)
    bucket: Mapped[str] = mapped_column(String(222))
    customers_folder: Mapped[str] = mapped_column(Text)
    metadata_path: Mapped[str] = mapped_column(Text)
    decryption_key: Mapped[str] = mapped_column(String(64))  # the webhook's CSEK (secret)
    engagement_id: Mapped[int | None] = mapped_column(BigInteger)
    metadata_json: Mapped[str | None] = mapped_column(Text)  # the metadata file, once read
    next_file: Mapped[int] = mapped_column(Integer, default=1)
    file_start: Mapped[int] = mapped_column(BigInteger, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    retry_at: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)


class ReadbackLag(Base):
    """Per tenant: how late GetCustomerChannelInteractions shows an applied call (learned
    from batches known to have landed), the sample being read now, and whether read-back
    can be used at all."""

    __tablename__ = "readback_lag"
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    lag_seconds: Mapped[float | None] = mapped_column(Float)  # the last observed lag
    learned_at: Mapped[float | None] = mapped_column(Float)
    samples: Mapped[int] = mapped_column(Integer, default=0)
    sample_batch_id: Mapped[int | None] = mapped_column(BigInteger)  # a sent batch
    sample_customer: Mapped[str | None] = mapped_column(String(128))
    sample_since: Mapped[float | None] = mapped_column(Float)  # when it was formed
    sample_next_at: Mapped[float | None] = mapped_column(Float)
    unusable: Mapped[str | None] = mapped_column(Text)  # why read-back cannot be trusted
    unusable_kind: Mapped[str | None] = mapped_column(String(16))  # lag, refused, shape
    unusable_since: Mapped[float | None] = mapped_column(Float)
    retry_at: Mapped[float | None] = mapped_column(Float)  # next try while unusable


class BatchReadback(Base):
    """The read-backs of one in-doubt report batch (removed once it is resolved)."""

    __tablename__ = "batch_readback"
    batch_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    in_doubt_since: Mapped[float] = mapped_column(Float)
    next_read_at: Mapped[float] = mapped_column(Float)
    reads: Mapped[int] = mapped_column(Integer, default=0)
    absent: Mapped[int] = mapped_column(Integer, default=0)  # reads after the horizon
    problem: Mapped[str | None] = mapped_column(Text)  # recorded once, shown until resolved

    __table_args__ = (Index("ix_batch_readback_due", "tenant", "next_read_at"),)


class WorkFailure(Base):
    """A unit of background work that failed (a notification, a pull, a send's execution,
    a cancellation, a metrics chunk): retried after ``next_at``; after a bounded number of
    refusals it is ``stopped`` with its reason until an operator requeues it."""

    __tablename__ = "work_failure"
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    item: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # retrying, stopped
    attempts: Mapped[int] = mapped_column(Integer)  # failures of any kind
    refusals: Mapped[int] = mapped_column(Integer)  # failures about the item itself
    last_error: Mapped[str] = mapped_column(Text)
    first_failed_at: Mapped[float] = mapped_column(Float)
    failed_at: Mapped[float] = mapped_column(Float)
    next_at: Mapped[float] = mapped_column(Float)


class PlatformCreate(Base):
    """One create on the platform (a send's contact list or campaign), recorded before it is
    made: the platform has no idempotency key and cannot list what it holds, so a create
    whose answer was lost is looked for by its unique ``name`` and deleted (a leftover)."""

    __tablename__ = "platform_create"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    send_id: Mapped[int] = mapped_column(BigInteger)
    made: Mapped[str] = mapped_column(String(16))  # list, campaign
    name: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))  # domain.CreateState
    platform_id: Mapped[int | None] = mapped_column(BigInteger)
    asked_at: Mapped[float] = mapped_column(Float)
    answered_at: Mapped[float | None] = mapped_column(Float)  # the answer came, or was lost
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_platform_create_state", "tenant", "state"),)


class InteractionCount(Base):
    """Interactions stored per send and event, kept as they are inserted (by a trigger the
    migration creates), so metric totals and funnels are read, not recounted. Pruning does
    not lower them: they are totals of what was stored."""

    __tablename__ = "interaction_count"
    send_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class InteractionCountDelta(Base):
    """PostgreSQL: what each INSERT statement added to ``interaction_count``, appended by a
    statement trigger (no row lock shared by concurrent writers) and folded into it from
    time to time. Always empty on SQLite, whose row trigger adds to the totals directly
    (it has one writer at a time)."""

    __tablename__ = "interaction_count_delta"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    send_id: Mapped[int] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(BigInteger)
