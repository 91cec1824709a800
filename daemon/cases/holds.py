"""A case nobody can approve waits, held, until the directory gives its step an approver.

Routing never treats "nobody found" as "nothing to ask": a vacant post, an approver who left
with nobody above, an expired relation or a removed unit hold the case (state `held`) with the
reason, the requester and the administrator are told, and the next directory import that
fills the post resumes it (daemon.cases.reroute). The case keeps where it stood and who acted
last, so it resumes exactly there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from daemon.cases.states import CaseState
from daemon.directory.lookup import Member, member
from daemon.notify.alerts import AdminAlerts
from daemon.routing.engine import Next, Pos, walk
from daemon.store.models import Case

if TYPE_CHECKING:
    from daemon.cases.workflow import Workflow


def hold_for_approver(wf: Workflow, s: Session, case: Case, pos: Pos, gap: str, detail: str,
                      last: Member, *, tell_admin: bool = True, announce: bool = True) -> None:
    """Hold `case` at `pos`: nobody can approve it there (`gap` is one of resolvers.GAPS).

    Without `announce` the caller tells the requester (tell_held) after its own mail."""
    template = wf.template_of(s, case)
    phase = template.phases[pos.phase] if pos.phase < len(template.phases) else None
    step = phase.steps[pos.step].name if phase and pos.step < len(phase.steps) else "-"
    where = f"{phase.name if phase else '-'}/{step}"
    case.state = CaseState.HELD
    case.route = {**pos.as_dict(), "held": gap, "detail": detail, "last": last.id,
                  "where": where}
    wf.record(s, case, "held", None, reason=gap,
              detail=f"{where}: {detail}; the case waits until a directory import gives this "
              "step an approver")
    if announce:
        tell_held(wf, s, case)
    if tell_admin:
        AdminAlerts(wf.notifier, wf.clock, wf.cfg.workflow.admin).tell(
            s, f"held:{case.number}", f"Case {case.number} is held: {gap}",
            f"Case {case.number} ({case.title}) cannot go on at step {where}: {gap} "
            f"({detail}).\nNobody is asked until the directory gives this step an approver; "
            "import a corrected directory (ringi directory import FILE) and the case resumes "
            f"by itself, or edit its route (ringi case route {case.number} add PERSON --by "
            "ADMIN).", case=case)


def tell_held(wf: Workflow, s: Session, case: Case) -> None:
    route = case.route or {}
    wf.tell_requester(s, case, "held", {"reason": route.get("held", ""),
                                        "detail": route.get("detail", ""),
                                        "step": route.get("where", "-")})


def held_at(case: Case) -> tuple[Pos, str] | None:
    """Where a held case stands and why, or None when it is not held."""
    route = case.route or {}
    if case.state != CaseState.HELD or "held" not in route:
        return None
    return Pos.of(route), str(route["held"])


def probe_held(wf: Workflow, s: Session, case: Case) -> tuple[Next, Member] | None:
    """Who the held step would ask now (no side effects), and from whom the route goes on."""
    if held_at(case) is None:
        return None
    route = case.route or {}
    requester = member(s, case.requester_id)
    last = member(s, str(route.get("last"))) or requester
    if requester is None or last is None:
        return None
    nxt = walk(s, wf.template_of(s, case), Pos.of(route), True, wf.facts(s, case),
               case.case_type, requester, last, wf.today(), needed=True)
    return nxt, last


def resume_held(wf: Workflow, s: Session, case: Case) -> list[Member]:
    """Route a held case on from where it stood, if its step has an approver now."""
    probed = probe_held(wf, s, case)
    if probed is None:
        return []
    nxt, last = probed
    if nxt.resolution is None or nxt.resolution.failed:
        return []
    pos = Pos.of(case.route)
    case.state = CaseState.IN_REVIEW
    wf.record(s, case, "resumed", None, detail="the held step has an approver again")
    asked = wf.route(s, case, pos, True, last, needed=True, announce=False)
    if case.state in (CaseState.IN_REVIEW, CaseState.APPROVED):
        wf.tell_requester(s, case, "resumed", asked=asked)
    wf.announce(s, case)
    return asked
