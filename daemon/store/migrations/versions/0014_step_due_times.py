"""waiting steps carry their next due time, so a timer pass reads only what is due

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03

Existing pending steps are left without a due time: the daemon computes them at its next
start from the reminder and escalation settings (daemon/cases/duetimes.py), which this
migration cannot see.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN / CREATE INDEX: SQLite does these in place.
    op.add_column("case_steps", sa.Column("next_check_at", sa.DateTime(timezone=True),
                                          nullable=True))
    op.create_index("ix_case_steps_next_check_at", "case_steps", ["next_check_at"])


def downgrade() -> None:
    op.drop_index("ix_case_steps_next_check_at", table_name="case_steps")
    op.drop_column("case_steps", "next_check_at")
