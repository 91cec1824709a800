"""digests of waiting cases and their opt-outs

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03

`digest_opt_outs`: people who do not want the daily digest (a table of its own, since
directory imports rewrite people rows). `digests`: one row per digest mail, its reply token
as a keyed hash, and its mail's Message-ID (for a reply that lost the token); a daily
digest's `(person_id, company_day)` is unique, which is how it is
sent once per person and company day. `digest_items`: the steps a digest listed, each with
the reply token issued for it there.
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "digest_opt_outs",
        sa.Column("person_id", sa.String(64), primary_key=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "digests",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("company_day", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=True),
        sa.UniqueConstraint("person_id", "company_day"),
    )
    op.create_index("ix_digests_message_id", "digests", ["message_id"])
    op.create_table(
        "digest_items",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("digest_id", sa.Integer(), sa.ForeignKey("digests.id"), nullable=False),
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("step_id", sa.Integer(), sa.ForeignKey("case_steps.id"), nullable=False),
        sa.Column("token_id", sa.Integer(), sa.ForeignKey("reply_tokens.id"), nullable=False),
        sa.UniqueConstraint("digest_id", "step_id"),
    )
    op.create_index("ix_digest_items_digest_id", "digest_items", ["digest_id"])


def downgrade() -> None:
    op.drop_index("ix_digest_items_digest_id", table_name="digest_items")
    op.drop_table("digest_items")
    op.drop_index("ix_digests_message_id", table_name="digests")
    op.drop_table("digests")
    op.drop_table("digest_opt_outs")
