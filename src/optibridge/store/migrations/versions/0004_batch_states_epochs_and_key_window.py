"""report batches: dead_letter instead of failed, the lease epoch, a batch event log, and
the calls of each API key counted in the database

Revision ID: 0004
Revises: 0003

Before 0004 every 4xx made a batch ``failed`` for good, and nothing put it back. A 4xx
answer means Optimove did not apply the call, so those batches are safe to send again:
a 400 (the batch's own content was refused) becomes ``dead_letter`` with the answer kept,
anything else (401/403 of a revoked key, a proxy's 404/408/413) goes back to ``pending``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("report_batch") as batch:
        batch.add_column(sa.Column("answer", sa.Text(), nullable=True))
        batch.add_column(sa.Column("epoch", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("tenant_lease") as batch:
        batch.add_column(sa.Column("epoch", sa.BigInteger(), nullable=False,
                                   server_default="1"))
    op.create_table(
        "batch_event",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("report_batch.id",
                                name="fk_batch_event_batch_id_report_batch"),
                  nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("epoch", sa.BigInteger(), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_batch_event"),
    )
    op.create_index("ix_batch_event_batch", "batch_event", ["batch_id"])
    op.create_table(
        "api_call",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_call"),
    )
    op.create_index("ix_api_call_key", "api_call", ["key", "started_at"])
    _migrate_failed()


def _migrate_failed() -> None:
    """A 400 was about the batch's content: dead letter (its message kept as the answer);
    every other refusal was recoverable and the batch was surely not applied: pending."""
    op.execute("UPDATE report_batch SET state = 'dead_letter', answer = last_error "
               "WHERE state = 'failed' AND (last_error LIKE '%rejected with 400%' "
               "OR last_error = 'empty report batch')")
    op.execute("UPDATE report_batch SET state = 'pending' WHERE state = 'failed'")


def downgrade() -> None:
    op.execute("UPDATE report_batch SET state = 'failed' WHERE state = 'dead_letter'")
    op.drop_index("ix_api_call_key", table_name="api_call")
    op.drop_table("api_call")
    op.drop_index("ix_batch_event_batch", table_name="batch_event")
    op.drop_table("batch_event")
    with op.batch_alter_table("tenant_lease") as batch:
        batch.drop_column("epoch")
    with op.batch_alter_table("report_batch") as batch:
        batch.drop_column("epoch")
        batch.drop_column("answer")
