"""the unreported-interaction index ends with the id (batch forming reads it in id order)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UNREPORTED = "batch_id IS NULL AND event IN ('opened', 'clicked', 'bounced', 'dropped')"


def _unreported_index(columns: list[str]) -> None:
    with op.batch_alter_table("interaction") as batch:
        batch.drop_index("ix_interaction_unreported")
        batch.create_index("ix_interaction_unreported", columns,
                           sqlite_where=sa.text(UNREPORTED),
                           postgresql_where=sa.text(UNREPORTED))


def upgrade() -> None:
    _unreported_index(["send_id", "event", "day", "id"])


def downgrade() -> None:
    _unreported_index(["send_id", "event", "day"])
