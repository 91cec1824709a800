"""When stored conditions fail: the setter's recovery paths, in their order (SPEC 6).

reserve: approve with modified content (e.g. the amount capped at the limit), told to the
  requester; revise: ask the setter to revise the condition for this case and wait (a
  revised set "for case N only" re-examines it; when the wait ends, the next path is
  tried); proxy: the setter's proxy approves if the proxy's own conditions hold; hold: a
  higher approver whose reconsideration range covers the case is asked, the case on hold.
When no path succeeds: the setter is asked in person if they wished to be contacted,
otherwise the case is rejected, naming every failing item.

In an all-of ask (`group`), a reservation only changes the content (the caller examines
everyone again), a proxy's approval leaves co-approvals to the caller's ask, and "contact
me" returns the setter to be asked together with the others.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import tomli_w
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from daemon.cases.examination import Examiner, Judged, Verdict, miss_lines
from daemon.cases.states import CaseState
from daemon.conditions.expr import compute, evaluate
from daemon.directory.lookup import Member, member
from daemon.notify.views import format_value
from daemon.routing.engine import Next, Pos, after_approval, walk
from daemon.routing.templates import Template
from daemon.store.db import rowcount
from daemon.store.models import Attachment, Case

AWAITING_REVISION = CaseState.AWAITING_REVISION


def _misses_text(j: Judged, locale: str = "en") -> str:
    """The failed conditions, in the words of the approver who reads them."""
    assert j.exam is not None
    if locale == "ja":
        return "、".join(f"{m.condition}（記入値 {m.given}、条件 {m.required}）"
                        for m in j.exam.missed)
    return "; ".join(f"{m.condition}: given {m.given}, required {m.required}"
                     for m in j.exam.missed)


class Recovery:
    def __init__(self, examiner: Examiner) -> None:
        self.ex = examiner
        self.wf = examiner.wf

    def handle(self, s: Session, case: Case, requester: Member, nxt: Next,
               template: Template, j: Judged, resume: int = 0,
               group: bool = False) -> Verdict:
        cs = j.failing_set
        assert cs is not None and j.exam is not None
        order = cs.recovery.on_failure
        for index in range(resume, len(order)):
            path = order[index]
            if path == "revise":
                return self.ask_revision(s, case, nxt, j, index + 1)
            verdict = {"reserve": self.reserve, "proxy": self.proxy,
                       "hold": self.hold}[path](s, case, requester, nxt, template, j, group)
            if verdict is not None:
                return verdict
        if j.exam.contact and group:
            missed = _misses_text(j, j.approver.locale)
            return Verdict("person", notes={j.approver.id: ("conditions", missed)})
        if j.exam.contact:
            return self.contact(s, case, nxt, template, j)
        return self.reject(s, case, j)

    # --- the paths -------------------------------------------------------------------------

    def reserve(self, s: Session, case: Case, requester: Member, nxt: Next,
                template: Template, j: Judged, group: bool = False) -> Verdict | None:
        assert j.exam is not None
        facts = self.wf.facts(s, case)
        changed = dict(case.fields)
        notes: list[str] = []
        for miss in j.exam.missed:
            cs = next(c for c in j.sets if c.name == miss.set_name)
            maps = self.ex.maps(s, cs)
            rule = next((r for r in cs.recovery.reservations if r.condition == miss.condition
                         and (r.when is None or evaluate(r.when, facts.fields, facts.kinds,
                                                         facts.context, maps).value is True)),
                        None)
            if rule is None:
                self.wf.record(s, case, "reservation", None,
                               detail=f"not possible: no reservation covers {miss.condition}")
                return None
            for fname, expr in rule.changes:
                value, problem = compute(expr, facts.fields, facts.kinds, facts.context, maps)
                if problem is not None:
                    self.wf.record(s, case, "reservation", None,
                                   detail=f"not possible: {fname}: {problem}")
                    return None
                changed[fname] = str(value) if not isinstance(value, str) else value
            if rule.note:
                notes.append(rule.note)
        again = self.ex.judge(s, case, requester, j.approver, fields=changed)
        if again.exam is None or not again.exam.passed:
            self.wf.record(s, case, "reservation", None,
                           detail="not possible: the modified content still fails "
                           + (_misses_text(again) if again.exam else "examination"))
            return None
        changes = [(f, case.fields.get(f), v) for f, v in changed.items()
                   if case.fields.get(f) != v]
        kinds = facts.kinds
        lines = [f"{f}: {format_value(kinds.get(f, ''), old)} -> "
                 f"{format_value(kinds.get(f, ''), new)}" for f, old, new in changes]
        case.fields = changed
        self.wf.record(s, case, "reserved", j.approver,
                       detail="approved with modified content: " + "; ".join(lines)
                       + (f" ({'; '.join(notes)})" if notes else ""))
        self.wf.tell_requester(s, case, "reserved", {"changes": lines, "notes": notes},
                               by=j.approver)
        if group:
            return Verdict("reexamine")
        return self.ex.approve(s, case, nxt, template, again, how=" with reservation")

    def ask_revision(self, s: Session, case: Case, nxt: Next, j: Judged,
                     resume: int) -> Verdict:
        cs = j.failing_set
        assert cs is not None and j.exam is not None and nxt.pos is not None
        until = self.wf.clock.now() + timedelta(hours=cs.recovery.revise_wait_hours)
        case.state = AWAITING_REVISION
        case.route = {**nxt.pos.as_dict(), "waiting": "revision", "setter": j.approver.id,
                      "set": cs.name, "until": until.isoformat(), "resume": resume}
        self.wf.record(s, case, "revision requested", j.approver,
                       detail=f"{cs.name}: {_misses_text(j)}; waiting until "
                       f"{until:%Y-%m-%d %H:%M} UTC")
        body = self.wf.library.active(s, cs.name)
        self.wf.send(s, "revision_request", j.approver, case, {
            "misses": miss_lines(j.exam), "set_name": cs.name,
            "until": until,  # shown in the company's zone by the template
            "current": _as_toml(body.body) if body is not None else ""})
        # The wait's end is shown in each reader's language and the company's zone.
        self.wf.tell_requester(s, case, "hold", {"reason": "", "revision_until": until},
                               by=j.approver)
        return Verdict("stopped", asked=[j.approver])

    def proxy(self, s: Session, case: Case, requester: Member, nxt: Next,
              template: Template, j: Judged, group: bool = False) -> Verdict | None:
        cs = j.failing_set
        assert cs is not None
        proxy = member(s, cs.recovery.proxy or "")
        if proxy is None or not proxy.person.active:
            self.wf.record(s, case, "proxy", None,
                           detail=f"not possible: proxy {cs.recovery.proxy!r} is not active")
            return None
        theirs = self.ex.judge(s, case, requester, proxy)
        if theirs.exam is None:
            self.wf.record(s, case, "proxy", proxy,
                           detail="not possible: the proxy has stored no conditions for this")
            return None
        if not theirs.exam.passed:
            self.wf.record(s, case, "proxy", proxy, detail="the proxy's conditions fail too: "
                           + _misses_text(theirs))
            return None
        on_behalf = Judged(j.approver, theirs.sets, theirs.exam)
        return self.ex.approve(s, case, nxt, template, on_behalf, by=proxy, how=" by proxy",
                               ask_co=not group)

    def hold(self, s: Session, case: Case, requester: Member, nxt: Next,
             template: Template, j: Judged, group: bool = False) -> Verdict | None:
        """Look up the chain for an approver whose reconsideration range covers the case."""
        assert nxt.pos is not None and j.exam is not None
        facts = self.wf.facts(s, case)
        start, inside = after_approval(template, nxt.pos)
        last = j.approver
        for _ in range(50):
            ahead = walk(s, template, start, inside, facts, case.case_type, requester, last,
                         self.wf.day_of(case.created_at))
            if ahead.pos is None or ahead.resolution is None or ahead.resolution.failed:
                break
            book = self.wf.library.book(s)
            units = self.wf.units_of(s, requester)
            for higher in ahead.resolution.approvers:
                for hs in book.for_approver(higher.id, case.case_type, requester.id, units,
                                            case.number):
                    rng = hs.recovery.hold_range
                    if rng is not None and evaluate(rng, facts.fields, facts.kinds,
                                                    facts.context,
                                                    self.ex.maps(s, hs)).value is True:
                        return self._put_on_hold(s, case, template, ahead, higher, hs.name, j)
            start, inside = after_approval(template, ahead.pos)
            last = ahead.resolution.approvers[-1] if ahead.resolution.approvers else last
        self.wf.record(s, case, "hold", None,
                       detail="not possible: no higher approver's reconsideration range "
                       "covers the case")
        return None

    def _put_on_hold(self, s: Session, case: Case, template: Template, ahead: Next,
                     higher: Member, set_name: str, j: Judged) -> Verdict:
        wf = self.wf
        assert ahead.pos is not None and ahead.resolution is not None
        phase = template.phases[ahead.pos.phase]
        step = wf.new_step(s, case, higher, slot=wf.next_slot(s, case), mode="single",
                           phase=phase.name, step_name=phase.steps[ahead.pos.step].name,
                           pos=ahead.pos.as_dict(), kind="reconsider",
                           resolver=ahead.resolution.resolver)
        case.state = CaseState.ON_HOLD
        case.route = ahead.pos.as_dict()
        wf.record(s, case, "hold", higher,
                  detail=f"{j.approver.person.name}'s conditions failed; inside "
                  f"{higher.person.name}'s reconsideration range ({set_name})")
        wf.ask(s, case, step, higher, note="reconsider", note_detail=(
            f"{j.approver.display_name('ja')}さんの承認条件: {_misses_text(j, 'ja')}"
            if higher.locale == "ja" else
            f"{j.approver.person.name}'s conditions: {_misses_text(j)}"))
        wf.tell_requester(s, case, "hold", {
            "reason": f"{j.approver.person.name}'s approval conditions are not met; "
                      f"{higher.person.name} reconsiders",
            # the Japanese template shows this one: the requester reads it in their language
            "reason_ja": f"{j.approver.display_name('ja')}さんの承認条件を満たしていないため、"
                         f"{higher.display_name('ja')}さんが再検討します"}, by=j.approver)
        return Verdict("stopped", asked=[higher])

    # --- when nothing else applies ---------------------------------------------------------

    def contact(self, s: Session, case: Case, nxt: Next, template: Template,
                j: Judged) -> Verdict:
        wf = self.wf
        assert nxt.pos is not None and nxt.resolution is not None
        phase = template.phases[nxt.pos.phase]
        step = wf.new_step(s, case, j.approver, slot=wf.next_slot(s, case), mode="single",
                           phase=phase.name, step_name=phase.steps[nxt.pos.step].name,
                           pos=nxt.pos.as_dict(), kind="approver",
                           resolver=nxt.resolution.resolver)
        case.state = CaseState.IN_REVIEW
        case.route = nxt.pos.as_dict()
        wf.ask(s, case, step, j.approver, note="conditions",
               note_detail=_misses_text(j, j.approver.locale))
        return Verdict("stopped", asked=[j.approver])

    def reject(self, s: Session, case: Case, j: Judged) -> Verdict:
        wf = self.wf
        assert j.exam is not None
        self.ex.cancel_provisional(s, case, f"{j.approver.person.name}'s conditions failed")
        wf.case_budgets.release(s, case, "the case was rejected")
        case.state = CaseState.REJECTED
        case.route = None
        wf.record(s, case, "rejected", j.approver,
                  detail="automatic, by stored conditions: " + _misses_text(j))
        documents = list(s.scalars(select(Attachment.filename).where(
            Attachment.case_id == case.id).order_by(Attachment.id)))
        wf.tell_requester(s, case, "rejected_conditions",
                          {"misses": miss_lines(j.exam, documents)}, by=j.approver)
        return Verdict("rejected")


def claim_waiting(s: Session, case_id: int) -> bool:
    """Take a case out of its revision wait with a conditional UPDATE, so the timer and a
    confirmed revision (or two daemons) never both resume it."""
    return rowcount(s.execute(
        update(Case).where(Case.id == case_id, Case.state == CaseState.AWAITING_REVISION)
        .values(state=CaseState.IN_REVIEW)
        .execution_options(synchronize_session=False))) == 1


def resume_after_wait(wf: Any, s: Session, case: Case, why: str) -> list[Member]:
    """Examine the waiting step again (a revised condition arrived, or the wait ended) and
    carry on from the path after "revise"."""
    route = dict(case.route or {})
    case.state = CaseState.IN_REVIEW
    setter = member(s, str(route.get("setter")))
    wf.record(s, case, "revision wait ended", setter, detail=why)
    last = wf.previous_actor(s, case, wf.next_slot(s, case)) or setter
    asked: list[Member] = wf.route(s, case, Pos.of(route), False, last,
                                   resume=int(route.get("resume", 0)))
    if asked and case.state in (CaseState.IN_REVIEW, CaseState.ON_HOLD):
        wf.tell_requester(s, case, "progress", by=setter or last, asked=asked)
    return asked


def _as_toml(body: dict[str, Any]) -> str:
    return tomli_w.dumps(body)
