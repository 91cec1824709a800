"""case history joins the audit chain: per-case hash chain, head on the case

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

Existing events are chained in id order, as they were recorded. The hash function is frozen
here (a copy of daemon.audit.casechain.event_hash at this revision) so later code changes
cannot alter what this migration wrote.
"""

import hashlib
import json
from datetime import UTC

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def _hash(prev: str, number: str, event_id: int, seq: int, at_iso: str, kind: str,
          actor_id, actor, decision, reason, detail: str) -> str:  # type: ignore[no-untyped-def]
    body = json.dumps({
        "case": number, "id": event_id, "seq": seq, "at": at_iso, "kind": kind,
        "actor_id": actor_id, "actor": actor, "decision": decision, "reason": reason,
        "detail": detail,
    }, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)
    return hashlib.sha256((prev + body).encode("utf-8")).hexdigest()


def upgrade() -> None:
    # Plain ADD COLUMN / CREATE INDEX: SQLite does these in place; a batch rebuild of
    # `cases` would drop a table other rows point at.
    op.add_column("cases", sa.Column("history_seq", sa.Integer(), nullable=False,
                                     server_default="0"))
    op.add_column("cases", sa.Column("history_hash", sa.String(length=64), nullable=True))
    op.add_column("cases", sa.Column("history_unanchored", sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    op.create_index("ix_cases_history_unanchored", "cases", ["history_unanchored"])
    op.add_column("case_events", sa.Column("seq", sa.Integer(), nullable=True))
    op.add_column("case_events", sa.Column("prev_hash", sa.String(length=64), nullable=True))
    op.add_column("case_events", sa.Column("hash", sa.String(length=64), nullable=True))

    conn = op.get_bind()
    cases = sa.table("cases", sa.column("id", sa.Integer), sa.column("number", sa.String),
                     sa.column("history_seq", sa.Integer), sa.column("history_hash", sa.String),
                     sa.column("history_unanchored", sa.Boolean))
    events = sa.table(
        "case_events", sa.column("id", sa.Integer), sa.column("case_id", sa.Integer),
        sa.column("at", sa.DateTime(timezone=True)), sa.column("kind", sa.String),
        sa.column("actor_id", sa.String), sa.column("actor", sa.JSON),
        sa.column("decision", sa.String), sa.column("reason", sa.Text),
        sa.column("detail", sa.Text), sa.column("seq", sa.Integer),
        sa.column("prev_hash", sa.String), sa.column("hash", sa.String))
    numbers = dict(conn.execute(sa.select(cases.c.id, cases.c.number)).all())
    heads: dict[int, tuple[int, str]] = {}
    for row in conn.execute(sa.select(events).order_by(events.c.case_id, events.c.id)).all():
        seq, prev = heads.get(row.case_id, (0, GENESIS))
        at = row.at if row.at.tzinfo is not None else row.at.replace(tzinfo=UTC)
        digest = _hash(prev, numbers[row.case_id], row.id, seq + 1,
                       at.astimezone(UTC).isoformat(), row.kind, row.actor_id, row.actor,
                       row.decision, row.reason, row.detail)
        conn.execute(sa.update(events).where(events.c.id == row.id)
                     .values(seq=seq + 1, prev_hash=prev, hash=digest))
        heads[row.case_id] = (seq + 1, digest)
    for case_id, (seq, digest) in heads.items():
        conn.execute(sa.update(cases).where(cases.c.id == case_id)
                     .values(history_seq=seq, history_hash=digest, history_unanchored=True))
    op.create_index("ux_case_events_case_seq", "case_events", ["case_id", "seq"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_case_events_case_seq", table_name="case_events")
    for col in ("hash", "prev_hash", "seq"):
        op.drop_column("case_events", col)
    op.drop_index("ix_cases_history_unanchored", table_name="cases")
    for col in ("history_unanchored", "history_hash", "history_seq"):
        op.drop_column("cases", col)
