"""Asking someone beside a waiting approver: the one path for a late step and an absent one.

The timers escalate a step that waited too long (daemon/cases/timers.py); an out-of-office
reply to an approval request asks the approver's proxy at once (daemon/intake/away.py). Both
ask the same way: the step becomes "any" (whoever of them decides first counts), each stand-in
gets a step and a request of their own, and the history says why.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from daemon.cases.workflow import Workflow
from daemon.directory.lookup import Member, proxies_of
from daemon.store.db import rowcount
from daemon.store.models import Case, CaseStep

PROXY = "registered proxy"
NEXT_RANK = "next rank"


def proxies_today(wf: Workflow, s: Session, approver: Member) -> list[Member]:
    """The approver's registered proxies on the company's day (`[workflow] timezone`)."""
    return [p for p in proxies_of(s, approver.id, wf.today()) if p.person.active]


def claim(wf: Workflow, s: Session, step: CaseStep, column: str) -> bool:
    """Set a step's once-only mark (`escalated_at`, `away_at`...) if nobody has: two daemons
    sharing a database, or a repeated mail, never act twice."""
    col = getattr(CaseStep, column)
    won = rowcount(s.execute(update(CaseStep).where(CaseStep.id == step.id, col.is_(None))
                             .values({column: wf.clock.now()})
                             .execution_options(synchronize_session=False)))
    if won:
        s.refresh(step)
    return won == 1


def ask_beside(wf: Workflow, s: Session, case: Case, step: CaseStep, approver: Member,
               targets: list[Member], how: str, why: str, note: str) -> None:
    """Ask `targets` in the same ask as `approver`'s step; `how` is the resolver recorded
    (PROXY or NEXT_RANK), `why` the history's reason, `note` the request's explanation."""
    if step.mode == "single":
        step.mode = "any"  # now either of them may decide
    # A proxy stands for the approver (or for whom their step already stood): its approval
    # continues the route from that person's post, not the proxy's unit. The next rank is on
    # the approver's own ladder: the route climbs on from them.
    pos = step.pos if step.pos is None or step.pos.get("as") or how == NEXT_RANK \
        else {**step.pos, "as": approver.id}
    for target in targets:
        new = wf.new_step(s, case, target, slot=step.slot, mode="any", phase=step.phase,
                          step_name=step.step_name, pos=pos, kind="escalation", resolver=how)
        wf.record(s, case, "escalated", target, detail=f"{why}; {how} asked too")
        wf.ask(s, case, new, target, note=note, note_detail=approver.display_name(target.locale))
