"""What a reorganisation's commit changed on a case, and how a rollback puts it back.

The commit records, per case it touched, the case's state and route and its waiting asks with
their live tokens before, and the asks it made after. Rollback closes the asks the commit
made, reopens the ones it withdrew and revives their tokens (unless expired), so the mail the
approver already has works again. A case someone decided since the commit is left as it is
and named in the rollback's report. A case whose reroute had not run yet (reorgrunner) only
had its asks withdrawn: they are reopened and its work item cancelled.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from daemon.cases.holds import tell_held
from daemon.cases.recheck import WAITING
from daemon.cases.reroute import reroute_all
from daemon.cases.states import CaseState, StepState
from daemon.cases.workflow import Workflow
from daemon.directory.export import from_snapshot
from daemon.directory.importer import apply_directory
from daemon.directory.lookup import member
from daemon.routing.engine import Pos
from daemon.store.models import Case, CaseStep, DirectoryImport, ReplyToken
from daemon.store.reorg_models import Reorganisation, ReorgCaseBackup, Rerouting

BULK = 1000  # cases per round of bulk statements


def snapshot_case(s: Session, case_id: int) -> dict[str, Any]:
    return snapshot_cases(s, [case_id])[case_id]


def snapshot_cases(s: Session, case_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per case: its state and route, its pending asks and their live tokens (three queries
    for any number of cases)."""
    s.flush()
    out: dict[int, dict[str, Any]] = {
        cid: {"state": state, "route": route, "pending": [], "tokens": []}
        for cid, state, route in s.execute(select(Case.id, Case.state, Case.route)
                                           .where(Case.id.in_(case_ids)))}
    for sid, cid in s.execute(select(CaseStep.id, CaseStep.case_id).where(
            CaseStep.case_id.in_(case_ids), CaseStep.state == StepState.PENDING)
            .order_by(CaseStep.id)):
        out[cid]["pending"].append(sid)
    for tid, cid in s.execute(select(ReplyToken.id, ReplyToken.case_id).where(
            ReplyToken.case_id.in_(case_ids), ReplyToken.revoked_at.is_(None),
            ReplyToken.used_at.is_(None), ReplyToken.step_id.in_(
                select(CaseStep.id).where(CaseStep.case_id.in_(case_ids),
                                          CaseStep.state == StepState.PENDING)))
            .order_by(ReplyToken.id)):
        out[cid]["tokens"].append(tid)
    return out


def restore_cases(wf: Workflow, s: Session, reorg: Reorganisation) -> list[str]:
    """Directory and cases back to before the commit; returns the cases left as they are."""
    now = wf.clock.now()
    assert reorg.backup is not None
    apply_directory(s, from_snapshot(reorg.backup), now)
    s.add(DirectoryImport(at=now, source=f"rollback of reorganisation {reorg.id}",
                          sha256="", diff={}))
    s.flush()
    why = f"reorganisation {reorg.id} was rolled back"
    left = _cancel_pending(s, reorg.id, now)
    for b in s.scalars(select(ReorgCaseBackup).where(ReorgCaseBackup.reorg_id == reorg.id,
                                                     ReorgCaseBackup.state.in_(
                                                         (Rerouting.DONE, Rerouting.SKIPPED)))
                       .order_by(ReorgCaseBackup.id)).all():
        case = s.scalar(select(Case).where(Case.id == b.case_id).with_for_update())
        if case is None:
            continue
        if b.state != Rerouting.DONE:
            left.append(f"{case.number}: ended before it was rerouted ({case.state}); left "
                        "as it is")
            continue
        made = [s.get(CaseStep, i) for i in b.after["pending"] if i not in b.before["pending"]]
        if case.state != b.after["state"] or any(
                st is None or st.state != StepState.PENDING for st in made):
            left.append(f"{case.number}: changed since the commit ({case.state}); left as it is")
            continue
        for st in made:
            assert st is not None
            wf.close_step(s, st, StepState.SUPERSEDED)
            person = member(s, st.approver_id)
            if person is not None and person.person.active:
                wf.send(s, "reassigned", person, case, {"why": why, "next": None})
        for sid in b.before["pending"]:
            st = s.get(CaseStep, sid)
            if st is not None:
                st.state = StepState.PENDING
        for tid in b.before["tokens"]:
            tok = s.get(ReplyToken, tid)
            if tok is not None and tok.used_at is None and tok.expires_at > now:
                tok.revoked_at = None
        case.state, case.route = b.before["state"], b.before["route"]
        wf.record(s, case, "restored", None, detail=f"{why}: back to the asks before it")
        asked = [st for sid in b.before["pending"] if (st := s.get(CaseStep, sid))]
        for st in asked:
            person = member(s, st.approver_id)
            if person is not None and person.person.active:
                wf.send(s, "reinstated", person, case, {"why": why})
        if case.state == CaseState.HELD:
            tell_held(wf, s, case)
    # Whatever else waits (requests registered during the change) follows the old directory.
    reroute_all(wf, s, why)
    return left


def _cancel_pending(s: Session, reorg_id: int, now: datetime) -> list[str]:
    """Cases whose reroute has not run: the commit only withdrew their asks in bulk, so they
    are reopened with their tokens, in bulk too (a rollback straight after a large commit
    finds most cases here); nobody was told anything, so nobody is now. Their work items
    then find the backups cancelled and do nothing. Returns the cases left as they are."""
    left: list[str] = []
    after = 0
    while True:
        rows = s.execute(select(ReorgCaseBackup.id, ReorgCaseBackup.case_id,
                                ReorgCaseBackup.before, ReorgCaseBackup.plan)
                         .where(ReorgCaseBackup.reorg_id == reorg_id,
                                ReorgCaseBackup.state == Rerouting.PENDING,
                                ReorgCaseBackup.id > after)
                         .order_by(ReorgCaseBackup.id).limit(BULK)).all()
        if not rows:
            return left
        after = rows[-1].id
        cases = {cid: (number, state, route) for cid, number, state, route in s.execute(
            select(Case.id, Case.number, Case.state, Case.route)
            .where(Case.id.in_([r.case_id for r in rows])).with_for_update())}
        steps: list[int] = []
        tokens: list[int] = []
        routes: list[dict[str, Any]] = []
        for r in rows:
            if r.case_id not in cases:
                continue
            number, state, route = cases[r.case_id]
            if (route or {}).get("rerouting") is not None:
                routes.append({"id": r.case_id, "route": r.before["route"]})
            if state not in WAITING:
                left.append(f"{number}: ended before it was rerouted ({state}); left as it is")
                continue
            steps += (r.plan or {}).get("withdrawn", [])
            tokens += r.before["tokens"]
        s.execute(update(ReorgCaseBackup).where(ReorgCaseBackup.id.in_([r.id for r in rows]))
                  .values(state=Rerouting.CANCELLED))
        if routes:
            s.execute(update(Case), routes)
        for i in range(0, len(steps), BULK):
            s.execute(update(CaseStep).where(CaseStep.id.in_(steps[i:i + BULK]),
                                             CaseStep.state == StepState.SUPERSEDED)
                      .values(state=StepState.PENDING)
                      .execution_options(synchronize_session=False))
        for i in range(0, len(tokens), BULK):
            s.execute(update(ReplyToken).where(
                ReplyToken.id.in_(tokens[i:i + BULK]), ReplyToken.step_id.in_(steps),
                ReplyToken.used_at.is_(None), ReplyToken.expires_at > now)
                .values(revoked_at=None).execution_options(synchronize_session=False))


def route_registered(wf: Workflow, s: Session, reorg_id: int) -> int:
    """Requests registered during the change are routed now, from the start."""
    routed = 0
    for case in s.scalars(select(Case).where(Case.state == CaseState.RECEIVED)
                          .order_by(Case.id).with_for_update()).all():
        if (case.route or {}).get("deferred") != reorg_id:
            continue
        requester = member(s, case.requester_id)
        if requester is None:
            continue
        case.route = None
        wf.record(s, case, "routed", None, detail=f"reorganisation {reorg_id} ended; routed now")
        asked = wf.route(s, case, Pos(), False, requester, announce=False)
        if case.state in (CaseState.IN_REVIEW, CaseState.APPROVED):
            wf.tell_requester(s, case, "resumed", {"deferred": True}, asked=asked)
        wf.announce(s, case)
        routed += 1
    return routed
