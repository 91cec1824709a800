"""recognising a retried delivery: dedupe key, Message-ID key, duplicate_of

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dedupe_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("message_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("duplicate_of", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint("uq_inbound_messages_dedupe_key", ["dedupe_key"])
        batch_op.create_index("ix_inbound_messages_message_key", ["message_key"])
        batch_op.create_index("ix_inbound_messages_duplicate_of", ["duplicate_of"])


def downgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_messages_duplicate_of")
        batch_op.drop_index("ix_inbound_messages_message_key")
        batch_op.drop_constraint("uq_inbound_messages_dedupe_key", type_="unique")
        batch_op.drop_column("duplicate_of")
        batch_op.drop_column("message_key")
        batch_op.drop_column("dedupe_key")
