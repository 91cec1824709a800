"""An append-only audit log whose entries are chained by SHA-256 (SPEC 11).

Each entry's hash covers its own contents and the previous entry's hash, so changing,
removing or reordering any entry breaks every later link and `verify` names where. The
single ``audit_head`` row (created by migration 0005, seq 0, 64 zeros) names the last link;
appending locks it, so concurrent writers on one PostgreSQL append in a strict order and
seqs stay consecutive. On SQLite, BEGIN IMMEDIATE already serialises writers.

The head lock is held until the caller's transaction ends. Services that append after
writing other rows (budgets, factors) take it *first* (`lock`), so every audited writer
queues on the same lock before touching anything else and two of them never deadlock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from daemon.clock import Clock
from daemon.store.condition_models import AuditEntry, AuditHead

GENESIS = "0" * 64
HEAD_ID = 1
# Column widths in audit_log; cut here so both backends store (and hash) the same text.
KIND_MAX, ACTOR_MAX, SUBJECT_MAX = 64, 64, 200


class AuditError(Exception):
    """The trail cannot be appended to (e.g. the database was never migrated)."""


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no whitespace; Decimal and dates as their str().

    NaN and infinity are refused: they are not JSON, and PostgreSQL would not store them.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=str)


def normalise(data: dict[str, Any]) -> dict[str, Any]:
    """The data as it reads back from the JSON column, so the stored text hashes the same."""
    result: dict[str, Any] = json.loads(canonical_json(data))
    return result


def entry_hash(prev_hash: str, seq: int, at: datetime, kind: str, actor: str | None,
               subject: str, data: dict[str, Any]) -> str:
    body = canonical_json({"seq": seq, "at": at.isoformat(), "kind": kind, "actor": actor,
                           "subject": subject, "data": data})
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def _hash_of(e: AuditEntry) -> str:
    return entry_hash(e.prev_hash, e.seq, e.at, e.kind, e.actor, e.subject, e.data)


class AuditTrail:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def lock(self, s: Session) -> tuple[int, str]:
        """Lock the head row until the transaction ends; returns (seq, hash) of the last link.

        Reads with a fresh statement (never the session's identity map), so a writer that
        waited for the lock sees the head its predecessor committed.
        """
        row = s.execute(
            select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == HEAD_ID)
            .with_for_update()
        ).first()
        if row is None:
            raise AuditError("the audit trail has no head row; run the database migrations")
        return int(row.seq), str(row.hash)

    def append(self, s: Session, kind: str, actor: str | None, subject: str,
               data: dict[str, Any]) -> None:
        """Add one entry in the caller's transaction: it exists iff the change it records does."""
        seq, prev = self.lock(s)
        seq += 1
        at = self.clock.now().astimezone(UTC)  # as the column reads back, so it hashes alike
        kind, subject = kind[:KIND_MAX], subject[:SUBJECT_MAX]
        actor = None if actor is None else actor[:ACTOR_MAX]
        data = normalise(data)
        digest = entry_hash(prev, seq, at, kind, actor, subject, data)
        s.add(AuditEntry(seq=seq, at=at, kind=kind, actor=actor, subject=subject, data=data,
                         prev_hash=prev, hash=digest))
        s.flush()
        s.execute(update(AuditHead).where(AuditHead.id == HEAD_ID)
                  .values(seq=seq, hash=digest)
                  .execution_options(synchronize_session=False))

    def _entries(self, s: Session) -> Iterator[AuditEntry]:
        stmt = select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=500)
        yield from s.scalars(stmt)

    def verify(self, s: Session) -> list[str]:
        """Recompute the chain in seq order; one readable line per problem, [] if intact."""
        problems: list[str] = []
        expected_seq, prev_hash, prev_seq = 1, GENESIS, 0
        count = 0
        for e in self._entries(s):
            count += 1
            if e.seq != expected_seq:
                gap = (f"seq {expected_seq}" if e.seq == expected_seq + 1
                       else f"seqs {expected_seq}..{e.seq - 1}")
                problems.append(f"seq {e.seq}: follows seq {prev_seq}; {gap} missing "
                                "(entries removed or renumbered)")
            if e.prev_hash != prev_hash:
                problems.append(
                    f"seq {e.seq}: does not link to "
                    f"{'the start of the chain' if prev_seq == 0 else f'seq {prev_seq}'} "
                    "(an entry before it was removed, reordered or altered)")
            if _hash_of(e) != e.hash:
                problems.append(f"seq {e.seq}: contents do not match its hash "
                                f"(entry altered: {e.kind}, {e.subject})")
            expected_seq, prev_hash, prev_seq = e.seq + 1, e.hash, e.seq
        head = s.execute(
            select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == HEAD_ID)
        ).first()
        if head is None:
            problems.append("head: the audit_head row is missing")
        elif head.seq != prev_seq or head.hash != prev_hash:
            last = f"seq {prev_seq}" if count else "no entries"
            problems.append(f"head: names seq {head.seq} but the chain ends at {last} "
                            "(entries removed at the end, or the head was altered)")
        return problems

    def head(self, s: Session) -> tuple[int, str]:
        """(seq, hash) of the last link, without locking; operators may record the hash."""
        row = s.execute(select(AuditHead.seq, AuditHead.hash)
                        .where(AuditHead.id == HEAD_ID)).first()
        return (0, GENESIS) if row is None else (int(row.seq), str(row.hash))

    def recent(self, s: Session, subject: str | None = None,
               limit: int = 50) -> list[AuditEntry]:
        """The newest `limit` entries (optionally about one subject), oldest first."""
        stmt = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)
        if subject is not None:
            stmt = stmt.where(AuditEntry.subject == subject)
        return list(reversed(s.scalars(stmt).all()))


def format_entry(e: AuditEntry) -> str:
    """One line for `ringi audit show`."""
    at = e.at.strftime("%Y-%m-%d %H:%M:%S")
    return f"{e.seq:>6}  {at}  {e.kind:<26} {e.actor or '-':<12} {e.subject}  " \
           f"{canonical_json(e.data)}"
