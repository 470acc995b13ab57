"""callbacks received and the events they carried, kept as inbox rows are stored
(triggers), from what is stored now: /metrics reads a row instead of summing the inbox

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# Row 0 holds the total. SQLite (one writer at a time) adds to it row by row.
SQLITE_TRIGGER = """
CREATE TRIGGER callback_received AFTER INSERT ON callback_inbox
BEGIN
    UPDATE callback_total SET callbacks = callbacks + 1, events = events + NEW.count
    WHERE id = 0;
END
"""

# PostgreSQL: one row per INSERT statement (no row lock shared by concurrent intake
# transactions of several replicas), folded into row 0 by the mapper.
POSTGRES_FUNCTION = """
CREATE FUNCTION callback_received() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO callback_total (callbacks, events)
    SELECT count(*), coalesce(sum(count), 0) FROM new_rows HAVING count(*) > 0;
    RETURN NULL;
END
$$
"""
POSTGRES_TRIGGER = """
CREATE TRIGGER callback_received AFTER INSERT ON callback_inbox
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION callback_received()
"""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name != "sqlite"
    if postgres:  # no insert between the count of what is stored and the trigger
        op.execute("LOCK TABLE callback_inbox IN SHARE ROW EXCLUSIVE MODE")
    op.create_table(
        "callback_total",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("callbacks", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_callback_total"))
    op.execute("INSERT INTO callback_total (id, callbacks, events) "
               "SELECT 0, count(*), coalesce(sum(count), 0) FROM callback_inbox")
    if postgres:
        op.execute(POSTGRES_FUNCTION)
        op.execute(POSTGRES_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS callback_received" +
               ("" if op.get_bind().dialect.name == "sqlite" else " ON callback_inbox"))
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP FUNCTION IF EXISTS callback_received()")
    op.drop_table("callback_total")
