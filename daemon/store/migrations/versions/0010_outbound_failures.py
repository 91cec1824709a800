"""permanent outbound failures and dead-letter alerts

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # When an outgoing mail became a dead letter, and the last error (shown by case show).
    op.add_column("outbound_mails", sa.Column("failed_at", sa.DateTime(timezone=True),
                                              nullable=True))
    op.add_column("outbound_mails", sa.Column("error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbound_mails") as batch:
        batch.drop_column("error")
        batch.drop_column("failed_at")
