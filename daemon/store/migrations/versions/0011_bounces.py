"""bounces matched to the mail ringi sent

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per bounced mail and action (failed, delayed...): a repeat is acted on once.
    op.create_table(
        "bounces",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("inbound_id", sa.Integer(), nullable=False),
        sa.Column("outbound_mail_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("diagnostic", sa.Text(), nullable=False),
        sa.Column("reporter", sa.String(length=200), nullable=False),
        sa.Column("matched_by", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("outbound_mail_id", "action", name="uq_bounces_mail_action"),
    )
    op.create_index("ix_bounces_outbound_mail_id", "bounces", ["outbound_mail_id"])
    op.create_index("ix_bounces_case_id", "bounces", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_bounces_case_id", table_name="bounces")
    op.drop_index("ix_bounces_outbound_mail_id", table_name="bounces")
    op.drop_table("bounces")
