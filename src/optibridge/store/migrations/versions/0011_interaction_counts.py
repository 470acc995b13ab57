"""interactions counted per send and event as they are stored (triggers), from what is
stored now

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SQLITE_TRIGGER = """
CREATE TRIGGER interaction_counted AFTER INSERT ON interaction
BEGIN
    INSERT INTO interaction_count (send_id, event, count) VALUES (NEW.send_id, NEW.event, 1)
    ON CONFLICT (send_id, event) DO UPDATE SET count = count + 1;
END
"""

# One delta row per (send, event) an INSERT statement added to: concurrent writers append,
# none waits on another's row lock; only the rows the statement really inserted are in
# new_rows (ON CONFLICT DO NOTHING skips the others).
POSTGRES_FUNCTION = """
CREATE FUNCTION interaction_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO interaction_count_delta (send_id, event, count)
    SELECT send_id, event, count(*) FROM new_rows GROUP BY send_id, event;
    RETURN NULL;
END
$$
"""
POSTGRES_TRIGGER = """
CREATE TRIGGER interaction_counted AFTER INSERT ON interaction
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION interaction_counted()
"""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name != "sqlite"
    if postgres:  # no insert between the count of what is stored and the trigger
        op.execute("LOCK TABLE interaction IN SHARE ROW EXCLUSIVE MODE")
    op.create_table(
        "interaction_count",
        sa.Column("send_id", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("send_id", "event", name="pk_interaction_count"))
    op.create_table(
        "interaction_count_delta",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("send_id", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_interaction_count_delta"))
    op.execute("INSERT INTO interaction_count (send_id, event, count) "
               "SELECT send_id, event, count(*) FROM interaction GROUP BY send_id, event")
    if postgres:
        op.execute(POSTGRES_FUNCTION)
        op.execute(POSTGRES_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS interaction_counted" +
               ("" if op.get_bind().dialect.name == "sqlite" else " ON interaction"))
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP FUNCTION IF EXISTS interaction_counted()")
    op.drop_table("interaction_count_delta")
    op.drop_table("interaction_count")
