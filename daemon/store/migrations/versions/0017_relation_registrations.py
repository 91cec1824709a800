"""approval relations registered by the departments themselves

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03

`approval_relations.source`: "file" for the administrator's relations from the directory
file (every existing row), "registered" for those registered by mail or command, which a
directory import leaves alone; `note`: the registrar's note. `people.may_register` and
`may_approve`: the registration and approval qualifications when the directory file gives
them (NULL: by position rank, as configured). `relation_history`: every stored change;
`relation_requests`: changes waiting for their registrar to accept a gap.
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approval_relations") as batch:
        batch.add_column(sa.Column("source", sa.String(16), nullable=False,
                                   server_default="file"))
        batch.add_column(sa.Column("note", sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table("people") as batch:
        batch.add_column(sa.Column("may_register", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("may_approve", sa.Boolean(), nullable=True))
    op.create_table(
        "relation_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("relation_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("approver_id", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(16), nullable=False),
        sa.Column("object_id", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
    )
    op.create_index("ix_relation_history_relation_id", "relation_history", ["relation_id"])
    op.create_index("ix_relation_history_approver_id", "relation_history", ["approver_id"])
    op.create_index("ix_relation_history_object_id", "relation_history", ["object_id"])
    op.create_table(
        "relation_requests",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("registrar_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("relation_id", sa.Integer(), nullable=True),
        sa.Column("change", sa.JSON(), nullable=False),
        sa.Column("gaps", sa.Text(), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
    )
    op.create_index("ix_relation_requests_registrar_id", "relation_requests", ["registrar_id"])
    op.create_index("ix_relation_requests_code_hash", "relation_requests", ["code_hash"])


def downgrade() -> None:
    op.drop_table("relation_requests")
    op.drop_table("relation_history")
    with op.batch_alter_table("people") as batch:
        batch.drop_column("may_approve")
        batch.drop_column("may_register")
    with op.batch_alter_table("approval_relations") as batch:
        batch.drop_column("note")
        batch.drop_column("source")
