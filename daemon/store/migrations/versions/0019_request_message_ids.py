"""approval requests known by their Message-ID; out-of-office replies per ask

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03

`reply_tokens.message_id`: the Message-ID of the approval request that carried the token
(NULL for tokens issued before this revision). A reply that lost its token is matched by the
request its In-Reply-To/References name; the token itself stays stored only as its hash.
`case_steps.away_at`: when an out-of-office reply to this ask was first received, claimed
once so a second one changes nothing.
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reply_tokens") as batch:
        batch.add_column(sa.Column("message_id", sa.String(255), nullable=True))
    op.create_index("ix_reply_tokens_message_id", "reply_tokens", ["message_id"])
    with op.batch_alter_table("case_steps") as batch:
        batch.add_column(sa.Column("away_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("case_steps") as batch:
        batch.drop_column("away_at")
    op.drop_index("ix_reply_tokens_message_id", table_name="reply_tokens")
    with op.batch_alter_table("reply_tokens") as batch:
        batch.drop_column("message_id")
