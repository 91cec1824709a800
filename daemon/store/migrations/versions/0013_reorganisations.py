"""reorganisations: planned directory changes, case backups for rollback, kept replies

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reorganisations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("begun_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("backup", sa.JSON(), nullable=True),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reorganisations_state", "reorganisations", ["state"])
    op.create_table(
        "reorg_case_backups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("reorg_id", sa.Integer(), sa.ForeignKey("reorganisations.id"),
                  nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reorg_case_backups_reorg_id", "reorg_case_backups", ["reorg_id"])
    op.create_index("ix_reorg_case_backups_case_id", "reorg_case_backups", ["case_id"])
    op.create_table(
        "reorg_kept_replies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("reorg_id", sa.Integer(), sa.ForeignKey("reorganisations.id"),
                  nullable=False),
        sa.Column("inbound_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=320), nullable=False),
        sa.Column("kept_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("inbound_id", name="uq_reorg_kept_replies_inbound"),
    )
    op.create_index("ix_reorg_kept_replies_reorg_id", "reorg_kept_replies", ["reorg_id"])


def downgrade() -> None:
    op.drop_table("reorg_kept_replies")
    op.drop_table("reorg_case_backups")
    op.drop_table("reorganisations")
