"""Case history as a hash chain per case, anchored in the audit trail (SPEC 3, 11).

Each case event's hash covers its row id, its place in the case (seq), its contents and the
previous event's hash; the case row holds the head (seq, hash). So an edited, deleted or
reordered event breaks the case's chain or disagrees with the head, and `ringi audit verify`
names it. Recording an event locks only its own case row: intake never waits on a global lock.

A per-case chain alone could be rewritten whole, head included, by someone with write access
to the database. Anchors close that: a timer pass appends one audit entry ("case history
anchor") listing the heads of every case whose history grew since the last anchor, so the
global audit chain fixes each case's history at that point. Verification checks the case's
chain still reaches every anchored (seq, hash). Events newer than the last anchor (at most one
timer interval, and none after a clean stop) are protected by the case chain only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from daemon.audit.trail import AuditTrail, canonical_json, normalise
from daemon.store.condition_models import AuditEntry
from daemon.store.models import Case, CaseEvent

GENESIS = "0" * 64
ANCHOR_KIND = "case history anchor"
ANCHOR_BATCH = 2000  # heads per anchor entry; a busy pass writes several entries


def event_hash(prev_hash: str, number: str, event_id: int, seq: int, at_iso: str, kind: str,
               actor_id: str | None, actor: dict[str, Any], decision: str | None,
               reason: str | None, detail: str) -> str:
    body = canonical_json({
        "case": number, "id": event_id, "seq": seq, "at": at_iso, "kind": kind,
        "actor_id": actor_id, "actor": actor, "decision": decision, "reason": reason,
        "detail": detail,
    })
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def _hash_of(number: str, e: CaseEvent) -> str:
    return event_hash(e.prev_hash or "", number, e.id, e.seq or 0,
                      e.at.astimezone(UTC).isoformat(), e.kind, e.actor_id, e.actor,
                      e.decision, e.reason, e.detail)


def chain_event(s: Session, case: Case, event: CaseEvent) -> None:
    """Link a new event (already added to `s`) to its case's chain and move the head.

    The head is read with a fresh locking statement, so two transactions recording on one
    case link one after the other instead of forking the chain.
    """
    s.flush()  # the event's id, and any earlier event of this transaction
    head = s.execute(select(Case.history_seq, Case.history_hash)
                     .where(Case.id == case.id).with_for_update()).one()
    seq, prev = int(head.history_seq or 0) + 1, head.history_hash or GENESIS
    event.at = event.at.astimezone(UTC)  # as the column reads back, so it hashes alike
    event.actor = normalise(event.actor)
    event.seq, event.prev_hash = seq, prev
    event.hash = _hash_of(case.number, event)
    s.execute(update(Case).where(Case.id == case.id)
              .values(history_seq=seq, history_hash=event.hash, history_unanchored=True)
              .execution_options(synchronize_session=False))
    case.history_seq, case.history_hash, case.history_unanchored = seq, event.hash, True


def anchor(s: Session, trail: AuditTrail, limit: int = ANCHOR_BATCH) -> int:
    """Append one audit entry fixing the heads of cases whose history grew; how many."""
    trail.lock(s)  # first, as every audited writer does (one lock order, no deadlock)
    rows = s.execute(select(Case.id, Case.number, Case.history_seq, Case.history_hash)
                     .where(Case.history_unanchored.is_(True))
                     .order_by(Case.id).limit(limit).with_for_update()).all()
    if not rows:
        return 0
    heads = {r.number: [int(r.history_seq), r.history_hash] for r in rows}
    trail.append(s, ANCHOR_KIND, None, "cases", {"heads": heads})
    for r in rows:  # only if still at the anchored head: a newer event keeps the flag
        s.execute(update(Case).where(Case.id == r.id, Case.history_seq == r.history_seq)
                  .values(history_unanchored=False)
                  .execution_options(synchronize_session=False))
    return len(rows)


def anchor_all(s: Session, trail: AuditTrail) -> int:
    total = 0
    while (n := anchor(s, trail)) > 0:
        total += n
        if n < ANCHOR_BATCH:
            break
    return total


@dataclass
class _Walk:
    number: str
    expected_seq: int = 1
    prev_hash: str = GENESIS
    hashes: dict[int, str] | None = None


def _anchored(s: Session) -> dict[str, dict[int, tuple[int, str]]]:
    """number -> {seq: (audit seq, hash)} from every anchor entry in the trail."""
    points: dict[str, dict[int, tuple[int, str]]] = {}
    stmt = (select(AuditEntry.seq, AuditEntry.data).where(AuditEntry.kind == ANCHOR_KIND)
            .order_by(AuditEntry.seq).execution_options(yield_per=200))
    for audit_seq, data in s.execute(stmt):
        heads = (data or {}).get("heads", {})
        if not isinstance(heads, dict):
            continue
        for number, head in heads.items():
            if isinstance(head, list) and len(head) == 2:
                points.setdefault(str(number), {})[int(head[0])] = (int(audit_seq), str(head[1]))
    return points


def _events(s: Session) -> Iterator[tuple[str, CaseEvent]]:
    stmt = (select(Case.number, CaseEvent).join(Case, Case.id == CaseEvent.case_id)
            .order_by(CaseEvent.case_id, CaseEvent.seq, CaseEvent.id)
            .execution_options(yield_per=1000))
    return ((number, event) for number, event in s.execute(stmt))


def case_history_counts(s: Session) -> tuple[int, int]:
    """(cases, events) for the verify summary."""
    cases = s.scalar(select(func.count()).select_from(Case)) or 0
    events = s.scalar(select(func.count()).select_from(CaseEvent)) or 0
    return int(cases), int(events)


def verify_cases(s: Session) -> list[str]:
    """Every case's chain, its head and every anchor; one readable line per problem."""
    problems: list[str] = []
    anchors = _anchored(s)
    walks: dict[str, _Walk] = {}
    for number, e in _events(s):
        w = walks.setdefault(number, _Walk(number, hashes={}))
        where = f"case {number} event {e.seq}"
        if e.seq is None or e.hash is None:
            problems.append(f"case {number}: event id {e.id} is not chained (row inserted "
                            "outside ringi)")
            continue
        if e.seq != w.expected_seq:
            problems.append(f"{where}: follows event {w.expected_seq - 1}; "
                            f"event(s) {w.expected_seq}..{e.seq - 1} missing (removed or "
                            "renumbered)" if e.seq > w.expected_seq else
                            f"{where}: appears twice or out of order (reordered)")
        if e.prev_hash != w.prev_hash:
            problems.append(f"{where}: does not link to the event before it (an event was "
                            "removed, reordered or altered)")
        if _hash_of(number, e) != e.hash:
            problems.append(f"{where}: contents do not match its hash (event altered: "
                            f"{e.kind})")
        assert w.hashes is not None
        w.hashes[e.seq] = e.hash
        w.expected_seq, w.prev_hash = e.seq + 1, e.hash
    heads = s.execute(select(Case.number, Case.history_seq, Case.history_hash)).all()
    known = set()
    for number, seq, digest in heads:
        known.add(number)
        w = walks.get(number, _Walk(number, hashes={}))
        last = w.expected_seq - 1
        if int(seq or 0) != last or (last and digest != w.prev_hash):
            problems.append(f"case {number}: history head names event {seq or 0} but the "
                            f"chain ends at event {last} (events removed at the end, or the "
                            "head was altered)")
        for at_seq, (audit_seq, anchored_hash) in sorted(anchors.get(number, {}).items()):
            have = (w.hashes or {}).get(at_seq)
            if have != anchored_hash:
                problems.append(f"case {number}: event {at_seq} differs from the audit "
                                f"trail's anchor (audit seq {audit_seq}): history rewritten")
    for number in sorted(set(anchors) - known):
        problems.append(f"case {number}: anchored in the audit trail but missing from the "
                        "database (case deleted)")
    return problems
