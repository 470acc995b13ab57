"""The customer index holds only the reported events

A read-back's probe looks a batch's customers' other reports up by customer
(``clear_customers``), and reports are only Opened, Clicked, Bounced and Dropped. Every
submitted and delivered interaction, most of a campaign's rows, was in the index too: at
millions of rows each was a random insert into it. SQLite, 8,000,000 interactions inserted
in pages of 10,000 in random customer order: 391 s with the whole index, 265 s with this
one.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

INDEX = "ix_interaction_customer"
REPORTED_EVENTS = sa.text("event IN ('opened', 'clicked', 'bounced', 'dropped')")


def upgrade() -> None:
    op.drop_index(INDEX, table_name="interaction")
    op.create_index(INDEX, "interaction", ["customer_id"],
                    sqlite_where=REPORTED_EVENTS, postgresql_where=REPORTED_EVENTS)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="interaction")
    op.create_index(INDEX, "interaction", ["customer_id"])
