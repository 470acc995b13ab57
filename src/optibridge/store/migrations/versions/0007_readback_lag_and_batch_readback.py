"""the learned read-back lag per tenant and the read-backs of in-doubt batches

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "readback_lag",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("lag_seconds", sa.Float, nullable=True),
        sa.Column("learned_at", sa.Float, nullable=True),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("sample_batch_id", sa.BigInteger, nullable=True),
        sa.Column("sample_customer", sa.String(128), nullable=True),
        sa.Column("sample_since", sa.Float, nullable=True),
        sa.Column("sample_next_at", sa.Float, nullable=True),
        sa.Column("unusable", sa.Text, nullable=True),
        sa.Column("unusable_kind", sa.String(16), nullable=True),
        sa.Column("unusable_since", sa.Float, nullable=True),
        sa.Column("retry_at", sa.Float, nullable=True))
    op.create_table(
        "batch_readback",
        sa.Column("batch_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("in_doubt_since", sa.Float, nullable=False),
        sa.Column("next_read_at", sa.Float, nullable=False),
        sa.Column("reads", sa.Integer, nullable=False),
        sa.Column("absent", sa.Integer, nullable=False),
        sa.Column("problem", sa.Text, nullable=True))
    op.create_index("ix_batch_readback_due", "batch_readback", ["tenant", "next_read_at"])


def downgrade() -> None:
    op.drop_index("ix_batch_readback_due", "batch_readback")
    op.drop_table("batch_readback")
    op.drop_table("readback_lag")
