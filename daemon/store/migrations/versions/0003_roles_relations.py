"""directory roles (posts held in units) and registered approval relations

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "role_assignments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("unit_id", "role", "person_id", name="uq_role_assignments_post"),
    )
    op.create_index(
        "ix_role_assignments_person_id", "role_assignments", ["person_id"], unique=False
    )
    op.create_table(
        "approval_relations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("approver_id", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=16), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("registered_by", sa.String(length=64), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "approver_id", "object_type", "object_id", "kind", "valid_from",
            name="uq_approval_relations_key",
        ),
    )
    op.create_index(
        "ix_approval_relations_approver_id", "approval_relations", ["approver_id"], unique=False
    )
    op.create_index(
        "ix_approval_relations_object",
        "approval_relations",
        ["object_type", "object_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_approval_relations_object", table_name="approval_relations")
    op.drop_index("ix_approval_relations_approver_id", table_name="approval_relations")
    op.drop_table("approval_relations")
    op.drop_index("ix_role_assignments_person_id", table_name="role_assignments")
    op.drop_table("role_assignments")
