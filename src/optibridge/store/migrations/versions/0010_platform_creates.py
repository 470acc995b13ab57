"""platform creates recorded before they are made (leftovers of lost answers)

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "platform_create",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("send_id", sa.BigInteger(), nullable=False),
        sa.Column("made", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("platform_id", sa.BigInteger(), nullable=True),
        sa.Column("asked_at", sa.Float(), nullable=False),
        sa.Column("answered_at", sa.Float(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_platform_create"),
    )
    op.create_index("ix_platform_create_state", "platform_create", ["tenant", "state"])


def downgrade() -> None:
    op.drop_index("ix_platform_create_state", table_name="platform_create")
    op.drop_table("platform_create")
