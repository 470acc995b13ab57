"""work failures per item (back-off, stopped after bounded refusals); trigger fingerprints

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "work_failure",
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("item", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("refusals", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("first_failed_at", sa.Float(), nullable=False),
        sa.Column("failed_at", sa.Float(), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "kind", "item", name="pk_work_failure"),
    )
    with op.batch_alter_table("trigger") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(64), nullable=True))
        batch.add_column(sa.Column("repeat_of", sa.BigInteger(), nullable=True))
        batch.create_index("ix_trigger_fingerprint", ["tenant", "fingerprint"])


def downgrade() -> None:
    with op.batch_alter_table("trigger") as batch:
        batch.drop_index("ix_trigger_fingerprint")
        batch.drop_column("repeat_of")
        batch.drop_column("fingerprint")
    op.drop_table("work_failure")
