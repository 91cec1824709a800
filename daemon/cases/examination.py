"""Examining an ask against its approvers' stored conditions (SPEC 6).

An ask whose approvers stated no conditions goes to the people by mail. Otherwise:
- one approver, or "any" of several: the first whose conditions all hold approves
  automatically in their name; if none holds and someone has no conditions, the people are
  asked; if all fail, the failure is handled (see daemon.cases.recovery);
- "all": each failing approver's recovery paths are tried first (a rejection, a wait or a
  hold stops the whole ask; a reservation changes the content and everyone is examined
  again; "contact me" puts that approver among the people asked in person, told what
  failed); then those whose conditions hold approve automatically; anyone without
  conditions is asked in person together with them.
Automatic approvals are provisional while the route walks on: a failure further up the
chain cancels them (SPEC 6: "a failure anywhere cancels the provisional approval").
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.cases.states import CaseState, StepState
from daemon.conditions.examine import Examination, examine
from daemon.conditions.sets import ConditionSet
from daemon.directory.lookup import Member, member
from daemon.routing.engine import Next
from daemon.routing.templates import Template
from daemon.store.models import Case, CaseStep

if TYPE_CHECKING:
    from daemon.cases.workflow import Workflow


@dataclass
class Verdict:
    """What the examination leaves the route to do.

    none: ask `people` (all approvers if empty) in person; approved: carry on after the
    step with `last` as the previous approver; stopped: someone was asked or the case
    waits (route stops, `asked` are the people now waiting to act); rejected: case closed.
    """

    kind: str
    last: Member | None = None
    asked: list[Member] = field(default_factory=list)
    people: list[Member] = field(default_factory=list)
    # approver id -> (ask note, detail): why this person is asked in person after all
    notes: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class Judged:
    approver: Member
    sets: list[ConditionSet]
    exam: Examination | None

    @property
    def failing_set(self) -> ConditionSet | None:
        if self.exam is None:
            return None
        names = {m.set_name for m in self.exam.missed}
        return next((cs for cs in self.sets if cs.name in names), None)


def miss_lines(exam: Examination, documents: list[str] | None = None) -> list[dict[str, Any]]:
    """Each failing item for a mail; with the case's document names, the ones a condition's
    `document` pattern points at (case-insensitive), so the reader knows what to check."""
    return [{"condition": m.condition, "given": m.given, "required": m.required,
             "documents": [d for d in documents or [] if m.document
                           and fnmatch.fnmatch(d.casefold(), m.document.casefold())]}
            for m in exam.missed]


class Examiner:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow

    def factors(self, s: Session) -> dict[str, Any]:
        return self.wf.factors.all(s) if self.wf.factors is not None else {}

    def maps(self, s: Session, cs: ConditionSet) -> dict[str, dict[str, Any]]:
        """The external values and this set's remaining budgets, as expressions see them."""
        budgets = self.wf.budgets
        return {"factor": self.factors(s),
                "budget": {b.name: budgets.remaining(s, cs.name, b) for b in cs.budgets}
                if budgets is not None else {}}

    def judge(self, s: Session, case: Case, requester: Member, approver: Member,
              fields: dict[str, Any] | None = None) -> Judged:
        book = self.wf.library.book(s)
        # A set with no conditions only carries a hold range for lower approvers' failures.
        sets = [cs for cs in book.for_approver(approver.id, case.case_type, requester.id,
                                               self.wf.units_of(s, requester), case.number)
                if cs.conditions]
        if not sets:
            return Judged(approver, [], None)
        facts = self.wf.facts(s, case)
        budgets = self.wf.budgets
        return Judged(approver, sets, examine(
            sets, fields if fields is not None else facts.fields, facts.kinds, facts.context,
            self.factors(s), (lambda cs, spec: budgets.remaining(s, cs.name, spec))
            if budgets else None))

    def at_step(self, s: Session, case: Case, requester: Member, nxt: Next,
                template: Template, resume: int = 0, depth: int = 0) -> Verdict:
        from daemon.cases.recovery import Recovery

        res = nxt.resolution
        if res is None or nxt.pos is None:
            return Verdict("none")
        judged = [self.judge(s, case, requester, a) for a in res.approvers]
        notes: dict[str, tuple[str, str]] = {}
        for i, j in enumerate(judged):
            if j.exam is not None and j.exam.undecidable:  # asked in person, told why
                self.wf.record(s, case, "examined", j.approver,
                               detail=j.exam.summary() + "; asked in person")
                notes[j.approver.id] = ("undecided", "; ".join(j.exam.undecided))
                judged[i] = Judged(j.approver, [], None)
        examined = [j for j in judged if j.exam is not None]
        if not examined:
            return Verdict("none", notes=notes)
        failing = [j for j in examined if not j.exam or not j.exam.passed]
        for j in failing:
            assert j.exam is not None
            self.wf.record(s, case, "examined", j.approver, detail=j.exam.summary())
        if res.mode == "all":
            return self._all_of(s, case, requester, nxt, template, judged, resume, depth,
                                notes)
        passing = [j for j in examined if j.exam and j.exam.passed]
        if passing:
            return self.approve(s, case, nxt, template, passing[0])
        if len(examined) < len(judged):
            # someone without conditions can still decide in person
            return Verdict("none", notes=notes)
        return Recovery(self).handle(s, case, requester, nxt, template, failing[0], resume)

    def _all_of(self, s: Session, case: Case, requester: Member, nxt: Next,
                template: Template, judged: list[Judged], resume: int, depth: int,
                notes: dict[str, tuple[str, str]]) -> Verdict:
        """Everyone must approve: failures are settled first, so nobody's automatic
        approval is recorded for an ask that a failure then stops or re-examines."""
        from daemon.cases.recovery import Recovery

        people = [j.approver for j in judged if j.exam is None]
        last: Member | None = None
        # A revision wait resumes the paths of the setter who was waited for, not others'.
        waited = (case.route or {}).get("setter") if resume else None
        failing = [j for j in judged if j.exam is not None and not j.exam.passed]
        passing = [j for j in judged if j.exam is not None and j.exam.passed]
        for j in failing + passing:
            assert j.exam is not None
            if j.exam.passed:
                verdict = self.approve(s, case, nxt, template, j, ask_co=False)
            else:
                verdict = Recovery(self).handle(
                    s, case, requester, nxt, template, j,
                    resume if waited in (None, j.approver.id) else 0, group=True)
            if verdict.kind == "reexamine":  # a reservation changed the content
                if depth >= len(judged):
                    return Recovery(self).reject(s, case, j)
                return self.at_step(s, case, requester, nxt, template, 0, depth + 1)
            if verdict.kind in ("stopped", "rejected"):
                return verdict
            if verdict.kind == "person":  # "contact me": asked with the others
                people.append(j.approver)
                notes.update(verdict.notes)
                continue
            last = verdict.last
            people += verdict.people  # co-approvals join the same all-of ask
        done = {j.approver.id for j in passing + failing} - set(notes)
        people = list({m.id: m for m in people if m.id not in done}.values())
        if people:
            return Verdict("none", people=people, notes=notes)
        return Verdict("approved", last=last)

    def approve(self, s: Session, case: Case, nxt: Next, template: Template, j: Judged,
                by: Member | None = None, how: str = "", ask_co: bool = True) -> Verdict:
        """An automatic approval in the approver's name (or a proxy's, `by`), then any
        co-approvals the passing sets require (asked here, or returned in `people` for the
        caller's all-of ask when `ask_co` is False)."""
        wf = self.wf
        assert nxt.pos is not None and nxt.resolution is not None and j.exam is not None
        decider = by or j.approver
        short, uses = wf.case_budgets.consume(s, case, j.sets, decider)
        if short:  # a concurrent approval used the budget since the examination
            from daemon.cases.recovery import Recovery

            j.exam.missed.extend(short)
            wf.record(s, case, "examined", j.approver,
                      detail=f"the budget no longer covers the case: {short[0].required}")
            requester = member(s, case.requester_id) or j.approver
            return Recovery(self).handle(s, case, requester, nxt, template, j,
                                         group=not ask_co)
        phase = template.phases[nxt.pos.phase]
        step = wf.new_step(s, case, j.approver, slot=wf.next_slot(s, case), mode="single",
                           phase=phase.name, step_name=phase.steps[nxt.pos.step].name,
                           pos={**nxt.pos.as_dict(), **({"uses": uses} if uses else {})},
                           kind="automatic", resolver=nxt.resolution.resolver)
        step.state, step.decided_at, step.decided_by = (StepState.APPROVED, wf.clock.now(),
                                                         decider.id)
        whose = f"{decider.person.name}'s stored conditions" + (
            f" on behalf of {j.approver.person.name}" if by else "")
        wf.record(s, case, "decision", decider, decision="approve",
                  detail=f"automatic{how}, by {whose}: {j.exam.summary()}")
        required = [p for cs in j.sets for p in cs.recovery.also_required]
        people = [m for m in (member(s, pid) for pid in dict.fromkeys(required))
                  if m is not None and m.person.active and m.id != j.approver.id]
        if not people or not ask_co:
            return Verdict("approved", last=j.approver, people=people)
        slot = wf.next_slot(s, case)
        for person in people:
            co = wf.new_step(s, case, person, slot=slot, mode="all", phase=phase.name,
                             step_name=phase.steps[nxt.pos.step].name,
                             pos={**nxt.pos.as_dict(), "as": j.approver.id}, kind="coapproval",
                             resolver="also_required")
            wf.ask(s, case, co, person, note="coapproval", note_detail=(
                f"{j.approver.display_name('ja')}さんの承認条件による依頼です"
                if person.locale == "ja" else
                f"{j.approver.person.name}'s conditions require your approval too"))
        case.state = CaseState.IN_REVIEW
        case.route = nxt.pos.as_dict()
        return Verdict("stopped", asked=people)

    def cancel_provisional(self, s: Session, case: Case, why: str) -> None:
        """Automatic approvals since the last decision by a person no longer stand."""
        steps = s.scalars(select(CaseStep).where(
            CaseStep.case_id == case.id, CaseStep.round == case.round)
            .order_by(CaseStep.slot, CaseStep.seq)).all()
        human = [st.slot for st in steps if st.kind != "automatic"
                 and st.state == StepState.APPROVED]
        after = max(human, default=0)
        for st in steps:
            if st.kind == "automatic" and st.state == StepState.APPROVED and st.slot > after:
                st.state = StepState.SUPERSEDED
                self.wf.record(s, case, "provisional approval cancelled",
                               member(s, st.approver_id),
                               detail=f"{st.phase}/{st.step_name}: {why}")
