"""engagement: where an EventTypeID 14 campaign's audience files are, and the resume point

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "engagement",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("campaign_pk", Id, sa.ForeignKey("campaign.id",
                  name="fk_engagement_campaign_pk_campaign"), nullable=False),
        sa.Column("bucket", sa.String(222), nullable=False),
        sa.Column("customers_folder", sa.Text(), nullable=False),
        sa.Column("metadata_path", sa.Text(), nullable=False),
        sa.Column("decryption_key", sa.String(64), nullable=False),
        sa.Column("engagement_id", sa.BigInteger(), nullable=True),
        sa.Column("metadata_json", sa.Text(), nullable=True),
        sa.Column("next_file", sa.Integer(), nullable=False),
        sa.Column("file_start", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("retry_at", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_engagement"),
        sa.UniqueConstraint("campaign_pk", name="uq_engagement_campaign_pk"),
    )


def downgrade() -> None:
    op.drop_table("engagement")
