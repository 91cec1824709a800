"""What an approver's decision does (SPEC 5): approve, reject, return for changes, hold.

Several people may be asked at once: with "any" the first decision settles the ask and the
others' requests are withdrawn; with "all" every one must approve and any rejection counts.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.cases.documents import Note
from daemon.cases.states import CaseState, StepState
from daemon.cases.workflow import Workflow
from daemon.directory.lookup import Member, member
from daemon.notify.views import who
from daemon.routing.engine import Pos, after_approval, next_step
from daemon.store.models import Case, CaseStep


class Decisions:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow

    def _others(self, s: Session, case: Case, step: CaseStep) -> list[CaseStep]:
        return [o for o in self.wf.pending_steps(s, case) if o.slot == step.slot
                and o.id != step.id]

    def decide(self, s: Session, case: Case, step: CaseStep, actor: Member, decision: str,
               reason: str, proxy_for: Member | None = None,
               documents: Sequence[Note] = ()) -> None:
        """`documents`: the reply's files as attached (daemon.cases.documents), listed in
        the approver's confirmation."""
        wf = self.wf
        on_behalf = f" on behalf of {proxy_for.person.name}" if proxy_for else ""
        if decision == "hold":
            case.state = CaseState.ON_HOLD
            wf.record(s, case, "hold", actor, decision="hold", reason=reason or None,
                      detail=f"{step.phase}/{step.step_name}{on_behalf}; the request stays open")
            self._confirm(s, case, actor, documents, decision="hold", reason=reason, next=None)
            wf.tell_requester(s, case, "hold", {"reason": reason}, by=actor)
            return
        step.decided_at = wf.clock.now()
        step.decided_by = actor.id
        step.reason = reason or None
        wf.record(s, case, "decision", actor, decision=decision, reason=reason or None,
                  detail=f"{step.phase}/{step.step_name} (ask {step.slot}){on_behalf}")
        if decision == "approve":
            self._approve(s, case, step, actor, reason, proxy_for, documents)
        elif decision == "reject":
            self._reject(s, case, step, actor, reason, documents)
        else:
            self._return(s, case, step, actor, reason, documents)

    def _confirm(self, s: Session, case: Case, actor: Member, documents: Sequence[Note],
                 **ctx: object) -> None:
        self.wf.send(s, "decision_confirmed", actor, case, {**ctx, "documents": documents})

    def _approve(self, s: Session, case: Case, step: CaseStep, actor: Member,
                 reason: str, proxy_for: Member | None = None,
                 documents: Sequence[Note] = ()) -> None:
        wf = self.wf
        step.state = StepState.APPROVED
        wf.case_budgets.charge(s, case, proxy_for or actor, step)
        others = self._others(s, case, step)
        if step.mode == "all" and others:
            case.state = CaseState.IN_REVIEW
            waiting = ", ".join(o.approver_id for o in others)
            wf.record(s, case, "waiting", None, detail=f"all must approve; still waiting for "
                      f"{waiting}")
            self._confirm(s, case, actor, documents, decision="approve", reason=reason,
                          next=None)
            return
        for o in others:
            wf.close_step(s, o, StepState.SUPERSEDED)
            wf.record(s, case, "withdrawn", member(s, o.approver_id),
                      detail=f"request withdrawn: {actor.person.name} decided first")
        template = wf.template_of(s, case)
        # A proxy decides in the asked approver's place: the route goes on from there.
        last = proxy_for or actor
        # An escalation stands for the ask it was made beside: the route goes on as if that
        # ask were approved (an added person's proxy approves before the step, not for it).
        kind = self._stands_for(s, case, step) if step.kind == "escalation" else step.kind
        if kind == "added":
            # An added person's approval goes before the step: that step is asked again,
            # from where the route stood before the addition.
            start, inside = Pos.of(step.pos), False
            last = wf.previous_actor(s, case, step.slot) or actor
        elif kind in ("replaced", "coapproval"):
            # In someone's place (a replacement), or beside them (a co-approval their
            # conditions require): the route goes on after the step, from that person.
            start, inside = after_approval(template, Pos.of(step.pos))
            last = member(s, str((step.pos or {}).get("as"))) or actor
        elif kind == "admin" or step.pos is None:
            # The administrator stood in for a step nobody could fill: carry on after it.
            start, inside = next_step(template, Pos.of(step.pos)), False
        else:
            start, inside = after_approval(template, Pos.of(step.pos))
            last = self._footing(s, case, step) or last
        asked = wf.route(s, case, start, inside, last)
        self._confirm(s, case, actor, documents, decision="approve", reason=reason,
                      next=", ".join(who(m, actor.locale) for m in asked) if asked else None)
        if case.state != CaseState.APPROVED and asked:
            wf.tell_requester(s, case, "progress", by=actor, asked=asked)

    @staticmethod
    def _stands_for(s: Session, case: Case, step: CaseStep) -> str:
        """The kind of the ask an escalation was made beside (the slot's first ask)."""
        kind = s.scalar(select(CaseStep.kind).where(
            CaseStep.case_id == case.id, CaseStep.round == step.round,
            CaseStep.slot == step.slot, CaseStep.kind != "escalation")
            .order_by(CaseStep.seq).limit(1))
        return kind or step.kind

    def _footing(self, s: Session, case: Case, step: CaseStep) -> Member | None:
        """Whom a step stands for, when the route must climb from their post rather than
        the decider's: the approver recorded as "as" (an escalation to a proxy, a step asked
        again after a send-back), or, for a proxy or administrator asked beside a late or
        unreachable approver, that approver. A next-rank escalation climbs from its target,
        who is already on the approver's ladder."""
        as_id = (step.pos or {}).get("as")
        if as_id:
            return member(s, str(as_id))
        if step.kind != "escalation" or step.resolver == "next rank":
            return None
        original = s.scalar(select(CaseStep.approver_id).where(
            CaseStep.case_id == case.id, CaseStep.round == step.round,
            CaseStep.slot == step.slot, CaseStep.kind != "escalation")
            .order_by(CaseStep.seq).limit(1))
        return member(s, original) if original else None

    def _reject(self, s: Session, case: Case, step: CaseStep, actor: Member,
                reason: str, documents: Sequence[Note] = ()) -> None:
        wf = self.wf
        step.state = StepState.REJECTED
        for o in self._others(s, case, step):
            wf.close_step(s, o, StepState.SUPERSEDED)
        template = wf.template_of(s, case)
        pos = Pos.of(step.pos)
        business = (step.pos is not None and pos.phase < len(template.phases)
                    and template.phases[pos.phase].kind == "business")
        # A reconsideration refused ends the case: the conditions below had already failed.
        # A co-approver's refusal also ends it: the conditions required their approval.
        final = business or step.kind in ("reconsider", "coapproval")
        if not final and self._send_back(s, case, step, actor, reason, documents):
            return
        wf.case_budgets.release(s, case, "the case was rejected")
        case.state = CaseState.REJECTED
        case.route = None
        wf.record(s, case, "rejected", actor, reason=reason or None,
                  detail="returned to the requester, who may reapply or cancel"
                  + ("; business phase: every earlier approver is told" if business else ""))
        self._confirm(s, case, actor, documents, decision="reject", reason=reason, next=None)
        wf.tell_requester(s, case, "rejected", {"reason": reason}, by=actor)
        if business:
            earlier = s.scalars(select(CaseStep).where(
                CaseStep.case_id == case.id, CaseStep.round == case.round,
                CaseStep.state == StepState.APPROVED)).all()
            for approver_id in dict.fromkeys(e.approver_id for e in earlier):
                person = member(s, approver_id)
                if person is not None:
                    wf.send(s, "reject_notice", person, case,
                            {"by": who(actor, person.locale), "reason": reason})

    def _send_back(self, s: Session, case: Case, step: CaseStep, actor: Member,
                   reason: str, documents: Sequence[Note]) -> bool:
        """Back to the last approver before this ask who is not the rejecter; False when
        there is none (the requester gets the case). Every approval of the round from that
        ask onward is undone, so a sent-back approver who rejects in turn goes further back,
        never to themselves; an "all" ask is asked again whole."""
        wf = self.wf
        approved = s.scalars(select(CaseStep).where(
            CaseStep.case_id == case.id, CaseStep.round == case.round,
            CaseStep.state == StepState.APPROVED, CaseStep.slot < step.slot)
            .order_by(CaseStep.slot.desc(), CaseStep.seq.desc())).all()
        previous = next((a for a in approved if a.approver_id != actor.id), None)
        back_to = member(s, previous.approver_id) if previous is not None else None
        if previous is None or back_to is None or not back_to.person.active:
            return False
        group = [back_to]
        if previous.mode == "all":
            for a in approved:
                m = member(s, a.approver_id) if a.slot == previous.slot else None
                if m is not None and m.person.active and m.id != actor.id \
                        and m.id not in {g.id for g in group}:
                    group.append(m)
        names = ", ".join(g.person.name for g in group)
        undone = [a for a in s.scalars(select(CaseStep).where(
            CaseStep.case_id == case.id, CaseStep.round == case.round,
            CaseStep.state == StepState.APPROVED, CaseStep.slot >= previous.slot)
            .order_by(CaseStep.slot, CaseStep.seq)).all()]
        for a in undone:
            a.state = StepState.UNDONE
            # Named after whoever gave the approval (a proxy, a set's decider): mails list
            # approvals by their decision events, and this takes that person's back.
            wf.record(s, case, "approval undone", member(s, a.decided_by or a.approver_id),
                      detail=f"{a.phase}/{a.step_name} (ask {a.slot}): rejected by "
                      f"{actor.person.name}; back to {names}")
        wf.case_budgets.release(s, case, "the approval was undone by a send-back", undone)
        # The budgets the undone approvals used are given back; a new approval uses its own.
        pos = {k: v for k, v in (previous.pos or {}).items() if k not in ("uses", "released")}
        slot = wf.next_slot(s, case)
        case.route = pos or None
        wf.record(s, case, "sent back", back_to, detail=f"rejected by {actor.person.name}; "
                  f"back to the previous approver{'s' if len(group) > 1 else ''} {names}",
                  reason=reason or None)
        for g in group:
            new = wf.new_step(s, case, g, slot=slot, mode="all" if len(group) > 1 else "single",
                              phase=previous.phase, step_name=previous.step_name,
                              pos=pos or None, kind="returned", resolver=previous.resolver)
            wf.ask(s, case, new, g, note="returned",
                   note_detail=f"{who(actor, g.locale)}: {reason or '-'}")
        self._confirm(s, case, actor, documents, decision="reject", reason=reason,
                      next=", ".join(who(g, actor.locale) for g in group))
        asked = {g.id for g in group}
        for approver_id in dict.fromkeys(a.approver_id for a in undone):
            person = member(s, approver_id)
            if person is not None and person.id not in asked and person.id != actor.id:
                wf.send(s, "approval_undone", person, case,
                        {"by": who(actor, person.locale), "reason": reason,
                         "to": ", ".join(who(g, person.locale) for g in group)})
        return True

    def _return(self, s: Session, case: Case, step: CaseStep, actor: Member,
                reason: str, documents: Sequence[Note] = ()) -> None:
        wf = self.wf
        step.state = StepState.RETURNED
        for o in self._others(s, case, step):
            wf.close_step(s, o, StepState.SUPERSEDED)
        case.state = CaseState.RETURNED
        case.route = {**(step.pos or {}), "returned_by": actor.id, "step_id": step.id}
        wf.record(s, case, "returned", actor, reason=reason or None,
                  detail="changes requested; the requester may send corrected fields")
        self._confirm(s, case, actor, documents, decision="return", reason=reason, next=None)
        wf.tell_requester(s, case, "returned", {"reason": reason}, by=actor)
