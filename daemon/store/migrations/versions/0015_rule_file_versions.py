"""the last good content of case type files and of the destinations file

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03

Filled at the next start with the files as they load then; before that, a refused file has
no good version to fall back on.
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rule_file_versions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_rule_file_versions_path", "rule_file_versions", ["path"])


def downgrade() -> None:
    op.drop_index("ix_rule_file_versions_path", table_name="rule_file_versions")
    op.drop_table("rule_file_versions")
