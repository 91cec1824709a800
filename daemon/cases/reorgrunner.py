"""A reorganisation's commit switches at once; each moved case is rerouted afterwards.

Composing a moved case's history events, new ask, token and mails costs tens of ms, so
17,000 moves cannot fit in the commit's transaction. The commit therefore only withdraws,
in bulk UPDATEs, the asks that move or fail (their tokens die in the same instant, so no
old approver can decide after the switch), stores per case what it decided (the
ReorgCaseBackup's `plan`: the checks, where each ask stood, the asks it withdrew) and queues
one `reorg` work item per case. `ReorgRerouter` then acts on each case in its own
transaction exactly as `reroute.apply` would have (reroute.act_withdrawn), in case order.
The items and backups are durable: a crash leaves each case either not yet rerouted (its
item is reclaimed) or fully rerouted. A rollback that comes first cancels the pending
backups and reopens their asks (reorgrestore), so their items do nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from daemon.cases.holds import resume_held
from daemon.cases.recheck import WAITING, Check
from daemon.cases.reorgrestore import snapshot_case, snapshot_cases
from daemon.cases.reroute import act_withdrawn
from daemon.cases.states import CaseState, StepState
from daemon.cases.workflow import Workflow
from daemon.routing.engine import Pos
from daemon.store.db import Store
from daemon.store.models import Case, CaseStep, ReplyToken, WorkItem
from daemon.store.reorg_models import (
    Reorganisation,
    ReorgCaseBackup,
    ReorgState,
    Rerouting,
)
from daemon.workqueue.queue import Claimed, Queues, State, WorkQueue

log = logging.getLogger(__name__)

BULK = 1000  # cases per round of bulk statements in the commit


def withdraw_in_bulk(s: Session, reorg_id: int, acted: dict[int, list[Check]], now: datetime,
                     max_attempts: int) -> None:
    """The commit's share: per case, backup and plan; its moving and failing asks withdrawn
    and their tokens revoked; the case marked as being rerouted; its work item queued."""
    ids = list(acted)
    for start in range(0, len(ids), BULK):
        part = ids[start:start + BULK]
        before = snapshot_cases(s, part)
        steps: dict[tuple[int, int], list[tuple[int, str, dict[str, Any] | None]]] = {}
        for sid, cid, slot, kind, pos in s.execute(select(
                CaseStep.id, CaseStep.case_id, CaseStep.slot, CaseStep.kind, CaseStep.pos)
                .where(CaseStep.case_id.in_(part), CaseStep.state == StepState.PENDING)
                .order_by(CaseStep.case_id, CaseStep.seq)):
            steps.setdefault((cid, slot), []).append((sid, kind, pos))
        withdrawn: list[int] = []
        rows: list[dict[str, Any]] = []
        for cid in part:
            if cid not in before:
                continue
            plan: list[dict[str, Any]] = []
            mine: list[int] = []
            for c in acted[cid]:
                at = steps.get((cid, c.slot), []) if c.outcome != "resumes" else []
                if c.outcome != "resumes" and not at:
                    continue
                rep = next((st for st in at if st[1] != "escalation"), at[0]) if at else None
                mine += [st[0] for st in at]
                plan.append({**c.as_dict(), "case_id": cid, "slot": c.slot,
                             "pos": rep[2] if rep else None})
            withdrawn += mine
            rows.append(dict(reorg_id=reorg_id, case_id=cid, before=before[cid], after={},
                             plan={"checks": plan, "withdrawn": mine},
                             state=Rerouting.PENDING))
        for i in range(0, len(withdrawn), BULK):
            chunk = withdrawn[i:i + BULK]
            s.execute(update(CaseStep).where(CaseStep.id.in_(chunk))
                      .values(state=StepState.SUPERSEDED)
                      .execution_options(synchronize_session=False))
            s.execute(update(ReplyToken).where(
                ReplyToken.step_id.in_(chunk), ReplyToken.used_at.is_(None),
                ReplyToken.revoked_at.is_(None)).values(revoked_at=now)
                .execution_options(synchronize_session=False))
        if not rows:
            continue
        s.execute(update(Case), [
            {"id": r["case_id"], "route": {**(before[r["case_id"]]["route"] or {}),
                                          "rerouting": reorg_id}} for r in rows])
        backup_ids = s.scalars(insert(ReorgCaseBackup).returning(
            ReorgCaseBackup.id, sort_by_parameter_order=True), rows).all()
        s.execute(insert(WorkItem), [dict(
            queue=Queues.REORG, ref_id=bid, state=State.QUEUED, attempts=0,
            max_attempts=max_attempts, next_attempt_at=now, created_at=now, updated_at=now)
            for bid in backup_ids])


def rerouting(s: Session, reorg_id: int | None = None) -> int:
    """Cases whose reroute has not run yet (of one reorganisation, or of any)."""
    query = select(func.count()).select_from(ReorgCaseBackup).where(
        ReorgCaseBackup.state == Rerouting.PENDING)
    if reorg_id is not None:
        query = query.where(ReorgCaseBackup.reorg_id == reorg_id)
    return s.scalar(query) or 0


def unmark(case: Case) -> None:
    """Take the commit's "being rerouted" mark off the case's route."""
    route = {k: v for k, v in (case.route or {}).items() if k != "rerouting"}
    case.route = route or None


class ReorgRerouter:
    """The `reorg` queue's processor: one case of a committed reorganisation per item."""

    queue_name: str = Queues.REORG

    def __init__(self, store: Store, queue: WorkQueue, wf: Workflow) -> None:
        self.store = store
        self.queue = queue
        self.wf = wf
        self.on_done: Callable[[], None] | None = None  # wakes the outbox

    def process(self, item: Claimed) -> None:
        with self.store.transaction() as s:
            reorg_id = s.scalar(select(ReorgCaseBackup.reorg_id)
                                .where(ReorgCaseBackup.id == item.ref_id))
            # Shares the reorganisation's lock: a rollback (which takes it whole) waits for
            # this case to finish, or comes first and cancels it. Only the columns needed:
            # the row also holds the whole directory as it was (`backup`).
            reorg = s.execute(select(Reorganisation.id, Reorganisation.state,
                                     Reorganisation.source)
                              .where(Reorganisation.id == reorg_id)
                              .with_for_update(read=True)).first() \
                if reorg_id is not None else None
            b = s.scalar(select(ReorgCaseBackup).where(ReorgCaseBackup.id == item.ref_id)
                         .with_for_update())
            if reorg is not None and b is not None:
                case = s.scalar(select(Case).where(Case.id == b.case_id).with_for_update())
                if b.state == Rerouting.PENDING and reorg.state == ReorgState.COMMITTED \
                        and case is not None:
                    self._reroute(s, f"reorganisation {reorg.id} ({reorg.source})", b, case)
            self.queue.complete(s, item)
        if self.on_done is not None:
            self.on_done()

    def _reroute(self, s: Session, why: str, b: ReorgCaseBackup, case: Case) -> None:
        wf = self.wf
        unmark(case)
        if case.state not in WAITING:  # withdrawn, cancelled or decided since the commit
            b.state, b.after = Rerouting.SKIPPED, snapshot_case(s, case.id)
            return
        escalated: dict[int, list[str]] = {}  # slot -> who an escalation asked beside
        if (withdrawn := (b.plan or {}).get("withdrawn", [])):
            for slot, pid in s.execute(select(CaseStep.slot, CaseStep.approver_id).where(
                    CaseStep.id.in_(withdrawn), CaseStep.kind == "escalation")):
                escalated.setdefault(slot, []).append(pid)
        for d in (b.plan or {}).get("checks", []):
            c = Check(case.id, case.number, d["step"], d["outcome"], old=tuple(d["old"]),
                      new=tuple(d["new"]), reason=d["reason"], why=d["why"], slot=d["slot"])
            if c.outcome == "resumes":
                if case.state == CaseState.HELD:
                    resume_held(wf, s, case)
            else:
                act_withdrawn(wf, s, case, c, Pos.of(d["pos"]), why, tell_admin=False,
                              escalated=tuple(escalated.get(c.slot, ())))
        b.state, b.after = Rerouting.DONE, snapshot_case(s, case.id)
