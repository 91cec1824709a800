"""intake identity: source_key for de-duplication, meta for channel details

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_key", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("meta", sa.JSON(), nullable=True))
        batch_op.create_unique_constraint("uq_inbound_messages_source_key", ["source_key"])


def downgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_constraint("uq_inbound_messages_source_key", type_="unique")
        batch_op.drop_column("meta")
        batch_op.drop_column("source_key")
