"""expiry warnings for approval relations

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03

`approval_relations.warned_on`: the company day its registrar was last warned that the
relation ends soon (NULL: never). Set in the transaction that queues the warning, so a
crash neither sends a day's warning twice nor loses it. The index on `valid_to` lets the
daily job read only the relations ending within its window.
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approval_relations") as batch:
        batch.add_column(sa.Column("warned_on", sa.Date(), nullable=True))
    op.create_index("ix_approval_relations_valid_to", "approval_relations", ["valid_to"])


def downgrade() -> None:
    op.drop_index("ix_approval_relations_valid_to", table_name="approval_relations")
    with op.batch_alter_table("approval_relations") as batch:
        batch.drop_column("warned_on")
