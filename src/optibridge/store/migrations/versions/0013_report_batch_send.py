"""saveEvent batches name their send, so batch forming reads only the sends with events
not in a batch yet

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("report_batch") as batch:
        batch.add_column(sa.Column("send_id", sa.BigInteger(), nullable=True))
        batch.create_index("ix_report_batch_send", ["send_id"])


def downgrade() -> None:
    with op.batch_alter_table("report_batch") as batch:
        batch.drop_index("ix_report_batch_send")
        batch.drop_column("send_id")
