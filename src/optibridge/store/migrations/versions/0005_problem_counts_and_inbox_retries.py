"""problems heard again are counted on one row; inbox rows that fail mapping are retried

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table, first in (("problem", "at"), ("callback_problem", "received_at")):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("count", sa.Integer(), nullable=False,
                                       server_default="1"))
            batch.add_column(sa.Column("last_at", sa.Float(), nullable=True))
            batch.add_column(sa.Column("key", sa.String(length=64), nullable=True))
            batch.create_unique_constraint(f"uq_{table}_key", ["key"])
        rows = sa.table(table, sa.column("last_at"), sa.column(first))
        op.execute(rows.update().values(last_at=rows.c[first]))
    with op.batch_alter_table("callback_inbox") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("retry_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch.create_index("ix_callback_inbox_received", ["received_at"])


def downgrade() -> None:
    with op.batch_alter_table("callback_inbox") as batch:
        batch.drop_index("ix_callback_inbox_received")
        batch.drop_column("last_error")
        batch.drop_column("retry_at")
        batch.drop_column("attempts")
    for table in ("callback_problem", "problem"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"uq_{table}_key", type_="unique")
            batch.drop_column("key")
            batch.drop_column("last_at")
            batch.drop_column("count")
