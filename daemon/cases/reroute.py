"""Waiting cases after the directory changed: acting on who each waiting ask asks now.

daemon.cases.recheck finds, without side effects, what each waiting ask would do against
the directory as it stands; `apply` then acts on each outcome (SPEC 5, 10):

- unchanged: nobody hears anything;
- moves: the old asks are withdrawn (their tokens die), the old holders are told the case
  is no longer theirs, the new holders are asked and told whom they replace;
- fails: the asks are withdrawn and the case is held (daemon.cases.holds), never approved,
  skipped or sent on;
- resumes: a held case goes on from where it stood.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.cases.holds import hold_for_approver, resume_held
from daemon.cases.recheck import Check, check_all
from daemon.cases.states import CaseState, StepState
from daemon.cases.workflow import Workflow
from daemon.directory.lookup import Member, cached_directory, member
from daemon.notify.alerts import AdminAlerts
from daemon.notify.views import who
from daemon.routing.engine import Pos
from daemon.store.models import Case


def apply(wf: Workflow, s: Session, checks: list[Check], why: str,
          tell_admin: bool = False) -> list[Check]:
    """Act on each outcome (see the module doc); returns the checks that held a case.

    `tell_admin`: one administrator mail per held case (callers that act on many cases
    send one summary instead, as reroute_all does)."""
    held: list[Check] = []
    with cached_directory(s):
        for c in checks:
            if c.outcome not in ("unchanged", "held"):
                held += _act(wf, s, c, why, tell_admin)
    return held


def _act(wf: Workflow, s: Session, c: Check, why: str, tell_admin: bool) -> list[Check]:
    case = s.scalar(select(Case).where(Case.id == c.case_id).with_for_update())
    if case is None:
        return []
    if c.outcome == "resumes":
        resume_held(wf, s, case)
        return []
    steps = [st for st in wf.pending_steps(s, case) if st.slot == c.slot]
    if not steps:
        return []  # decided meanwhile
    rep = next((st for st in steps if st.kind != "escalation"), steps[0])
    for st in steps:
        wf.close_step(s, st, StepState.SUPERSEDED)
    escalated = tuple(st.approver_id for st in steps if st.kind == "escalation")
    return act_withdrawn(wf, s, case, c, Pos.of(rep.pos), why, tell_admin, escalated)


def act_withdrawn(wf: Workflow, s: Session, case: Case, c: Check, pos: Pos, why: str,
                  tell_admin: bool, escalated: tuple[str, ...] = ()) -> list[Check]:
    """Act on an ask that moves or fails once its old asks are withdrawn (by `_act`, or in
    bulk by a reorganisation's commit, whose work items call this: reorgrunner). `pos`:
    where the ask stood. Returns [c] when the case was held."""
    last = wf.previous_actor(s, case, c.slot) or member(s, case.requester_id)
    old = [m for pid in c.old if (m := member(s, pid)) is not None]
    names = ", ".join(m.person.name for m in old) or ", ".join(c.old)
    # Whoever an escalation asked beside them loses the ask too, and is told like them.
    told = old + [m for pid in escalated if pid not in c.old and (m := member(s, pid))]
    if c.outcome == "moves":
        wf.record(s, case, "reassigned", None,
                  detail=f"{c.step}: no longer with {names} ({why}); now {c.why}")
        case.state = CaseState.IN_REVIEW
        asked = wf.route(s, case, pos, True, last or old[0], needed=True,
                         replacing=tuple(old))
        _tell_old(wf, s, case, told, why, asked)
        return []
    wf.record(s, case, "withdrawn", None,
              detail=f"{c.step}: {names} can no longer be asked ({c.reason})")
    _tell_old(wf, s, case, told, why, [])
    if last is None:
        return []
    hold_for_approver(wf, s, case, pos, c.reason, c.why, last, tell_admin=tell_admin)
    return [c]


def _tell_old(wf: Workflow, s: Session, case: Case, old: list[Member], why: str,
              asked: list[Member]) -> None:
    for person in old:
        if person.person.active and person.id not in {m.id for m in asked}:
            wf.send(s, "reassigned", person, case, {
                "why": why, "next": ", ".join(who(m, person.locale) for m in asked) or None})


def reroute_all(wf: Workflow, s: Session, why: str) -> list[Check]:
    """Re-resolve and act on every waiting case; one administrator mail lists the holds."""
    with cached_directory(s):
        checks = check_all(wf, s)
        held = apply(wf, s, checks, why)
    if held:
        lines = "\n".join(f"  {c.number}  {c.step}: {c.reason} ({c.why})" for c in held)
        AdminAlerts(wf.notifier, wf.clock, wf.cfg.workflow.admin).tell(
            s, f"reroute:{wf.clock.now().isoformat()}",
            f"{len(held)} case(s) held after a directory change",
            f"After {why}, nobody can approve these waiting cases, so they are held:\n{lines}\n"
            "Each resumes by itself when a later directory import gives its step an "
            "approver; `ringi case show NUMBER` shows the reason.")
    return checks
