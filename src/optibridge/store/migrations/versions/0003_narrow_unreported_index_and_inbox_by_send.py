"""narrow the unreported-interaction index to reported events; index the inbox by send

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UNREPORTED = "batch_id IS NULL AND event IN ('opened', 'clicked', 'bounced', 'dropped')"


def upgrade() -> None:
    with op.batch_alter_table("interaction") as batch:
        batch.drop_index("ix_interaction_unreported")
        batch.create_index("ix_interaction_unreported", ["send_id", "event", "day"],
                           sqlite_where=sa.text(UNREPORTED),
                           postgresql_where=sa.text(UNREPORTED))
    with op.batch_alter_table("callback_inbox") as batch:
        batch.create_index("ix_callback_inbox_send", ["send_id"])


def downgrade() -> None:
    with op.batch_alter_table("callback_inbox") as batch:
        batch.drop_index("ix_callback_inbox_send")
    with op.batch_alter_table("interaction") as batch:
        batch.drop_index("ix_interaction_unreported")
        batch.create_index("ix_interaction_unreported", ["send_id", "event", "day"],
                           sqlite_where=sa.text("batch_id IS NULL"),
                           postgresql_where=sa.text("batch_id IS NULL"))
