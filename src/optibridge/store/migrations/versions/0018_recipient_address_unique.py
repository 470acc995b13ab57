"""a send's address belongs to one recipient (a unique index), so storing an audience page
needs no read of the addresses earlier pages took

The pull already kept a send's address to its first customer (a second one is Dropped: the
platform's list holds an address once, so they get no message of their own) by reading which
of a page's addresses earlier pages held: 14 ms of a 10,000-row page on SQLite, 50 ms on
PostgreSQL. With the index the insert itself finds the conflicts. Triggered sends did not
check at all, so a callback for a shared address counted for every customer holding it;
those rows are resolved here as the pull resolves them: the first recipient keeps the
address, the others lose it and get their Dropped.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

LATER_HOLDER = ("EXISTS (SELECT 1 FROM recipient AS holder WHERE holder.send_id = "
                "recipient.send_id AND holder.address = recipient.address "
                "AND holder.id < recipient.id)")
# Dropped on the send's day, once (the interaction's unique key), counted by its trigger.
DROP_LATER_HOLDERS = (
    "INSERT INTO interaction (send_id, customer_id, event, day, created_at) "  # noqa: S608
    "SELECT recipient.send_id, recipient.customer_id, 'dropped', "
    "{day}, {now} FROM recipient JOIN send ON send.id = recipient.send_id "
    f"WHERE {LATER_HOLDER} ON CONFLICT DO NOTHING")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    day = "date(send.scheduled_time)" if sqlite else "CAST(send.scheduled_time AS date)"
    now = "(julianday('now') - 2440587.5) * 86400.0" if sqlite else "extract(epoch FROM now())"
    op.execute(DROP_LATER_HOLDERS.format(day=day, now=now))
    op.execute(f"UPDATE recipient SET address = NULL WHERE {LATER_HOLDER}")  # noqa: S608
    op.create_index("uq_recipient_address", "recipient", ["send_id", "address"], unique=True)
    op.drop_index("ix_recipient_address", "recipient")


def downgrade() -> None:
    op.create_index("ix_recipient_address", "recipient", ["send_id", "address"])
    op.drop_index("uq_recipient_address", "recipient")
