"""a reorganisation's commit reroutes its cases afterwards, one work item per case

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03

`plan`: what the commit decided for the case (its checks, with the ask's position and the
asks it withdrew); `state`: pending until the case's work item has acted on it, then done,
skipped (the case had ended meanwhile) or cancelled (rolled back first). Rows written before
this revision were acted on inside their commit: done.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reorg_case_backups") as batch:
        batch.add_column(sa.Column("plan", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("state", sa.String(16), nullable=False,
                                   server_default="done"))


def downgrade() -> None:
    with op.batch_alter_table("reorg_case_backups") as batch:
        batch.drop_column("state")
        batch.drop_column("plan")
