"""workflow versions, route state on cases, richer case steps

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflow_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "digest"),
        sa.UniqueConstraint("name", "version"),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("workflow_version_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("route", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("round", sa.Integer(), nullable=False,
                                      server_default="1"))
    with op.batch_alter_table("case_steps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("round", sa.Integer(), nullable=False,
                                      server_default="1"))
        batch_op.add_column(sa.Column("slot", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("mode", sa.String(length=8), nullable=False,
                                      server_default="single"))
        batch_op.add_column(sa.Column("phase", sa.String(length=64), nullable=False,
                                      server_default=""))
        batch_op.add_column(sa.Column("step_name", sa.String(length=64), nullable=False,
                                      server_default=""))
        batch_op.add_column(sa.Column("pos", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("kind", sa.String(length=16), nullable=False,
                                      server_default="approver"))
        batch_op.add_column(sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("asked_post", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("case_steps", schema=None) as batch_op:
        for col in ("asked_post", "escalated_at", "reminded_at", "kind", "pos", "step_name",
                    "phase", "mode", "slot", "round"):
            batch_op.drop_column(col)
    with op.batch_alter_table("cases", schema=None) as batch_op:
        for col in ("round", "route", "workflow_version_id"):
            batch_op.drop_column(col)
    op.drop_table("workflow_versions")
