"""triggers (EventTypeID 11) and the template ID map

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "trigger",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("action_id", sa.BigInteger(), nullable=True),
        sa.Column("trigger_name", sa.String(length=200), nullable=True),
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column("fields", sa.Text(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("send_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger")),
    )
    with op.batch_alter_table("trigger", schema=None) as batch_op:
        batch_op.create_index(
            "ix_trigger_pending", ["tenant", "campaign_id", "channel_id", "template_id"],
            unique=False, sqlite_where=sa.text("send_id IS NULL"),
            postgresql_where=sa.text("send_id IS NULL"))
        batch_op.create_index("ix_trigger_send", ["send_id"], unique=False)
    op.create_table(
        "template_map",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("platform_id", sa.String(length=128), nullable=False),
        sa.Column("optimove_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "platform_id", name=op.f("pk_template_map")),
        sa.UniqueConstraint("tenant", "optimove_id", name="uq_template_map_optimove"),
    )


def downgrade() -> None:
    op.drop_table("template_map")
    with op.batch_alter_table("trigger", schema=None) as batch_op:
        batch_op.drop_index("ix_trigger_send")
        batch_op.drop_index("ix_trigger_pending")
    op.drop_table("trigger")
