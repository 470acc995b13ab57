"""report batches remember their backend (UpdateCampaignInteractions or saveEvent)

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("report_batch") as batch:
        batch.add_column(sa.Column("backend", sa.String(24), nullable=False,
                                   server_default="interactions"))


def downgrade() -> None:
    with op.batch_alter_table("report_batch") as batch:
        batch.drop_column("backend")
