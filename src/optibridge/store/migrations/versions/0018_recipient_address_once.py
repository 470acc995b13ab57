"""a send's address held by two recipients (triggered sends did not check) resolved as the
pull resolves it: the first recipient keeps the address, the others lose it and are Dropped

The platform's list holds an address once, so a second customer with it got no message of
their own, and every callback for the address counted for each customer holding it. The
store keeps a send's address to one recipient from now on, pulled or triggered; no unique
index holds it, because with ON CONFLICT both databases check a unique index before the
insert and again in it: on a 10,000-row page that cost SQLite more than the page's read of
the addresses earlier pages hold, and PostgreSQL as much.

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


def downgrade() -> None:
    """Nothing to undo: the addresses given up are not known any more, and not wanted."""
