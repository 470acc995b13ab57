"""PostgreSQL: recipient.send_id and interaction.send_id without their foreign keys, so
storing an audience page or mapping callbacks does not run a referential check per row

Measured on a 500,000-recipient send (PostgreSQL 15, a 10,000-row page): the check's
trigger took 43 ms of the 170 ms one page's recipient insert costs. It guarded nothing the code can break: every recipient and interaction is written
with the id of a send read or made in the same transaction, and sends are never deleted
(pruning takes triggers, inbox rows, report batches and settled creates, not sends). SQLite
keeps the constraints: there the check is an index lookup in the process, and dropping them
would rebuild both tables on every existing database (as migration 0015 explains).

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

CONSTRAINTS = (("fk_recipient_send_id_send", "recipient"),
               ("fk_interaction_send_id_send", "interaction"))


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, table in CONSTRAINTS:
            op.drop_constraint(name, table, type_="foreignkey")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, table in CONSTRAINTS:
            op.create_foreign_key(name, table, "send", ["send_id"], ["id"])
