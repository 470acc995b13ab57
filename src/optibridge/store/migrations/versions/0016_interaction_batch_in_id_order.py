"""interaction.batch_id indexed with the id: a batch's customers in id order straight from
the index on PostgreSQL

A read-back's probe is a batch's first customers in id order (``clear_customers``). With an
index on batch_id alone, PostgreSQL's planner walked the primary key in id order and
filtered on batch_id: measured on 1,000,000 interactions, 0.16 s for the 20th batch of 100,
0.59 s for the 90th (890,000 rows read and dropped), and 1.2 s each while reporting ran,
all of it between the end of a reporting pass and its in-doubt read-back. SQLite's index
already ends with the rowid (the id), so there it changes nothing.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

INDEX = "ix_interaction_batch"


def upgrade() -> None:
    op.drop_index(INDEX, table_name="interaction")
    op.create_index(INDEX, "interaction", ["batch_id", "id"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="interaction")
    op.create_index(INDEX, "interaction", ["batch_id"])
