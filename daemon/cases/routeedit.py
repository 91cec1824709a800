"""Altering one running case's remaining route: skip the current step, add a person before
it, or replace its approver (SPEC 5). Only the administrator or a configured route editor
may do it, and every change is in the history.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from daemon.cases.states import CaseState, StepState
from daemon.cases.workflow import Workflow
from daemon.directory.lookup import Member, member
from daemon.routing.engine import Pos, next_step
from daemon.store.models import Case

EDITS = ("skip", "add", "replace")


class RouteEditError(Exception):
    """Why the edit was refused, in plain words."""


class RouteEditor:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow

    def authorised(self, person: Member) -> bool:
        cfg = self.wf.cfg.workflow
        return person.id == cfg.admin or person.id in cfg.route_editors

    def edit(self, s: Session, case: Case, by: Member, action: str,
             person_id: str | None = None, reason: str = "") -> list[Member]:
        """Apply the edit; returns who is asked now."""
        wf = self.wf
        if not self.authorised(by):
            raise RouteEditError(f"{by.person.name} may not alter routes (only the "
                                 "administrator and the configured route editors)")
        if action not in EDITS:
            raise RouteEditError(f"unknown route edit {action!r}; use skip, add or replace")
        if case.state not in (CaseState.IN_REVIEW, CaseState.ON_HOLD):
            raise RouteEditError(f"case {case.number} is {case.state}; only a case waiting "
                                 "for an approver can be re-routed")
        pending = wf.pending_steps(s, case)
        if not pending:
            raise RouteEditError(f"case {case.number} has no pending step")
        target = None
        if action in ("add", "replace"):
            target = member(s, person_id or "")
            if target is None or not target.person.active:
                raise RouteEditError(f"{person_id!r} is not an active person in the directory")
        current = pending[0]
        for st in pending:
            wf.close_step(s, st, StepState.SUPERSEDED)
        names = ", ".join(p.approver_id for p in pending)
        wf.record(s, case, "route edit", by, reason=reason or None,
                  detail={"skip": f"step {current.phase}/{current.step_name} skipped "
                                  f"(was asking {names})",
                          "add": f"{person_id} added before step {current.phase}/"
                                 f"{current.step_name}",
                          "replace": f"{person_id} replaces {names} at step "
                                     f"{current.phase}/{current.step_name}"}[action])
        case.state = CaseState.IN_REVIEW
        if action == "skip":
            template = wf.template_of(s, case)
            last = wf.previous_actor(s, case, current.slot) or by
            return wf.route(s, case, next_step(template, Pos.of(current.pos)), False, last)
        assert target is not None
        pos = dict(current.pos or {})
        pos["as"] = current.approver_id  # whose place in the route the new person takes
        step = wf.new_step(s, case, target, slot=wf.next_slot(s, case), mode="single",
                           phase=current.phase, step_name=current.step_name, pos=pos,
                           kind="added" if action == "add" else "replaced",
                           resolver=f"route edit by {by.id}")
        wf.ask(s, case, step, target)
        return [target]
