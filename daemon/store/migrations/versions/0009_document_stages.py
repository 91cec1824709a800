"""documents added at later stages

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("added_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("stage", sa.String(length=40), server_default="request",
                                      nullable=False))
        batch_op.add_column(sa.Column("round", sa.Integer(), server_default="1",
                                      nullable=False))
        batch_op.add_column(sa.Column("step_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("inbound_id", sa.Integer(), nullable=True))
    # Every document stored before this came with the request: the person who sent it (a
    # proxy who entered the case, else the requester) and the request's stored input.
    op.execute(
        "UPDATE attachments SET "
        "added_by = (SELECT COALESCE(c.entered_by_id, c.requester_id) FROM cases c "
        "WHERE c.id = attachments.case_id), "
        "inbound_id = (SELECT c.source_inbound_id FROM cases c "
        "WHERE c.id = attachments.case_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_column("inbound_id")
        batch_op.drop_column("step_id")
        batch_op.drop_column("round")
        batch_op.drop_column("stage")
        batch_op.drop_column("added_by")
