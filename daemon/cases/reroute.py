"""Waiting cases after the directory changed: who each waiting step asks now (SPEC 5, 10).

`check_case` re-resolves every waiting ask of a case against the directory as it now stands,
without side effects, so a reorganisation plan can be verified inside a transaction that is
rolled back. `apply` then acts on each outcome:

- unchanged: the same people are asked; nobody hears anything;
- moves: the post changed hands; the old asks are withdrawn (their tokens die), the old
  holders are told the case is no longer theirs, the new holders are asked and told whom
  they replace;
- fails: nobody can approve the step now; the asks are withdrawn and the case is held
  (daemon.cases.holds), never approved, skipped or sent on;
- resumes: a held case whose step has an approver again goes on from where it stood.

Asks of named people (added, replacing someone, co-approvals, reconsiderations) stay while
the person is active; an escalation ask stays beside its step.

`check_all` runs over every waiting case (100,000 in the benchmark, bench/orgchange.py), so
it reads in bulk: cases a chunk at a time with their pending asks and earlier approvals in
one query each, the directory once (daemon.directory.lookup.cached_directory), and it lets
go of the rows of each chunk before the next.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.cases.holds import held_at, hold_for_approver, probe_held, resume_held
from daemon.cases.states import CaseState, StepState
from daemon.cases.workflow import Workflow
from daemon.directory.lookup import Member, cached_directory, member
from daemon.notify.alerts import AdminAlerts
from daemon.notify.views import who
from daemon.routing.engine import Next, Pos, walk
from daemon.store.models import Case, CaseStep

# Asks made by resolving the route (re-resolved); other kinds name a person on purpose.
ROUTED = {"approver", "returned", "corrected", "admin"}
WAITING = (CaseState.IN_REVIEW, CaseState.ON_HOLD, CaseState.HELD)


@dataclass(frozen=True)
class Check:
    """One waiting ask (or held case) against the directory as it stands."""

    case_id: int
    number: str
    step: str  # phase/step
    outcome: str  # unchanged, moves, fails, resumes, held
    old: tuple[str, ...] = ()  # person ids asked now
    new: tuple[str, ...] = ()  # person ids who would be asked
    reason: str = ""  # fails, held: one of daemon.routing.resolvers.GAPS
    why: str = ""
    slot: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"case": self.number, "step": self.step, "outcome": self.outcome,
                "old": list(self.old), "new": list(self.new), "reason": self.reason,
                "why": self.why}


@dataclass
class Loaded:
    """What checking one case reads besides the directory, loaded for many cases at once."""

    pending: dict[int, list[CaseStep]] = field(default_factory=dict)  # case id -> by seq
    # case id -> (round, slot, seq, approver) of every approved step
    approved: dict[int, list[tuple[int, int, int, str]]] = field(default_factory=dict)
    # Re-resolving a waiting ask reads neither the case's fields nor anything but who asked
    # and who acted last (engine.walk with `needed` stops at the ask): one walk serves every
    # case with the same template, ask, requester and last actor.
    walks: dict[tuple[Any, ...], Next] = field(default_factory=dict)

    def previous_actor(self, s: Session, case: Case, before_slot: int) -> Member | None:
        """As Workflow.previous_actor, from the loaded approvals."""
        prev = max(((slot, seq, pid) for rnd, slot, seq, pid in self.approved.get(case.id, [])
                    if rnd == case.round and slot < before_slot), default=None)
        return member(s, prev[2]) if prev else member(s, case.requester_id)


def _person_gone(m: Member | None) -> bool:
    return m is None or not m.person.active


def check_case(wf: Workflow, s: Session, case: Case, loaded: Loaded | None = None) -> list[Check]:
    """`loaded`: the case's pending and approved steps, read in bulk by check_all."""
    requester = member(s, case.requester_id)
    if case.state == CaseState.HELD:
        return [_check_held(wf, s, case, requester)]
    if case.state not in WAITING:
        return []
    slots: dict[int, list[CaseStep]] = defaultdict(list)
    pending = loaded.pending.get(case.id, []) if loaded else wf.pending_steps(s, case)
    for st in pending:
        slots[st.slot].append(st)
    return [_check_slot(wf, s, case, requester, slot, steps, loaded)
            for slot, steps in slots.items()]


def _requester_gap(requester: Member | None) -> str:
    if requester is None or not requester.person.active:
        return "requester gone"
    if requester.unit is None or not requester.unit.active:
        return "requester's unit gone"
    return ""


def _check_held(wf: Workflow, s: Session, case: Case, requester: Member | None) -> Check:
    where = held_at(case)
    pos, gap = where if where else (Pos(), "approver gone")
    label = _label(wf, s, case, pos)
    base = Check(case.id, case.number, label, "held")
    if (rgap := _requester_gap(requester)):
        return replace(base, outcome="held", reason=rgap, why=rgap)
    probed = probe_held(wf, s, case)
    res = probed[0].resolution if probed else None
    if res is None or res.failed:
        return replace(base, outcome="held",
                     reason=(res.gap if res else "") or gap, why=res.explanation if res else gap)
    return replace(base, outcome="resumes",
                 new=tuple(m.id for m in res.approvers), why=res.explanation)


def _label(wf: Workflow, s: Session, case: Case, pos: Pos) -> str:
    template = wf.template_of(s, case)
    if pos.phase >= len(template.phases):
        return "-"
    phase = template.phases[pos.phase]
    return f"{phase.name}/{phase.steps[pos.step].name}" if pos.step < len(phase.steps) \
        else phase.name


def _check_slot(wf: Workflow, s: Session, case: Case, requester: Member | None, slot: int,
                steps: list[CaseStep], loaded: Loaded | None) -> Check:
    asks = [st for st in steps if st.kind != "escalation"] or steps
    rep = asks[0]
    old = tuple(st.approver_id for st in asks)
    base = Check(case.id, case.number, f"{rep.phase}/{rep.step_name}", "unchanged", old=old,
                 slot=slot)
    if (rgap := _requester_gap(requester)):
        return replace(base, outcome="fails", reason=rgap, why=rgap)
    assert requester is not None
    if rep.kind not in ROUTED or rep.pos is None:
        gone = [pid for pid in old if _person_gone(member(s, pid))]
        if gone:
            return replace(base, outcome="fails",
                         reason="approver gone", why=f"{', '.join(gone)} left the directory")
        return replace(base, outcome="unchanged", new=old)
    last = (loaded.previous_actor(s, case, slot) if loaded
            else wf.previous_actor(s, case, slot)) or requester
    key = (case.workflow_version_id, case.case_type, Pos.of(rep.pos), requester.id, last.id)
    nxt = loaded.walks.get(key) if loaded else None
    if nxt is None:
        nxt = walk(s, wf.template_of(s, case), Pos.of(rep.pos), True, wf.facts(s, case),
                   case.case_type, requester, last, wf.clock.now().date(), needed=True)
        if loaded:
            loaded.walks[key] = nxt
    res = nxt.resolution
    if res is None or res.failed:
        if rep.kind == "admin":  # the administrator stands in until the post is filled
            return replace(base, outcome="unchanged", new=old)
        reason = (res.gap if res else "") or "approver gone"
        return replace(base, outcome="fails", reason=reason,
                     why=res.explanation if res else reason)
    new = tuple(m.id for m in res.approvers)
    if set(new) == set(old):
        return replace(base, outcome="unchanged", new=new)
    return replace(base, outcome="moves", new=new, why=res.explanation)


CHUNK = 500  # cases read at once (and let go of together)


def check_all(wf: Workflow, s: Session) -> list[Check]:
    """Every waiting case, in case order."""
    out: list[Check] = []
    walks: dict[tuple[Any, ...], Next] = {}
    with cached_directory(s):
        ids = list(s.scalars(select(Case.id).where(Case.state.in_(WAITING)).order_by(Case.id)))
        for start in range(0, len(ids), CHUNK):
            for case, loaded in _chunk(s, ids[start:start + CHUNK], walks):
                out.extend(check_case(wf, s, case, loaded))
    return out


def _chunk(s: Session, ids: list[int],
           walks: dict[tuple[Any, ...], Next]) -> Iterator[tuple[Case, Loaded]]:
    """The cases with their pending and approved steps; rows this read brought into the
    session leave it afterwards (the caller's own objects stay where they are)."""
    s.flush()  # nothing unsaved is ever let go of
    pending = select(CaseStep.id).where(CaseStep.case_id.in_(ids),
                                        CaseStep.state == StepState.PENDING)
    known = {k for cid in ids if (k := s.identity_key(Case, cid)) in s.identity_map}
    known |= {k for sid in s.scalars(pending)
              if (k := s.identity_key(CaseStep, sid)) in s.identity_map}
    cases = list(s.scalars(select(Case).where(Case.id.in_(ids)).order_by(Case.id)))
    loaded = Loaded(walks=walks)
    steps = list(s.scalars(select(CaseStep).where(CaseStep.id.in_(pending))
                           .order_by(CaseStep.case_id, CaseStep.seq)))
    for st in steps:
        loaded.pending.setdefault(st.case_id, []).append(st)
    for cid, rnd, slot, seq, pid in s.execute(select(
            CaseStep.case_id, CaseStep.round, CaseStep.slot, CaseStep.seq,
            CaseStep.approver_id).where(CaseStep.case_id.in_(ids),
                                        CaseStep.state == StepState.APPROVED)):
        loaded.approved.setdefault(cid, []).append((rnd, slot, seq, pid))
    for case in cases:
        yield case, loaded
    for obj in [*cases, *steps]:  # read-only above: nothing of theirs is unsaved
        if s.identity_key(instance=obj) not in known:
            s.expunge(obj)


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
    return act_withdrawn(wf, s, case, c, Pos.of(rep.pos), why, tell_admin)


def act_withdrawn(wf: Workflow, s: Session, case: Case, c: Check, pos: Pos, why: str,
                  tell_admin: bool) -> list[Check]:
    """Act on an ask that moves or fails once its old asks are withdrawn (by `_act`, or in
    bulk by a reorganisation's commit, whose work items call this: reorgrunner). `pos`:
    where the ask stood. Returns [c] when the case was held."""
    last = wf.previous_actor(s, case, c.slot) or member(s, case.requester_id)
    old = [m for pid in c.old if (m := member(s, pid)) is not None]
    names = ", ".join(m.person.name for m in old) or ", ".join(c.old)
    if c.outcome == "moves":
        wf.record(s, case, "reassigned", None,
                  detail=f"{c.step}: no longer with {names} ({why}); now {c.why}")
        case.state = CaseState.IN_REVIEW
        asked = wf.route(s, case, pos, True, last or old[0], needed=True,
                         replacing=tuple(old))
        _tell_old(wf, s, case, old, why, asked)
        return []
    wf.record(s, case, "withdrawn", None,
              detail=f"{c.step}: {names} can no longer be asked ({c.reason})")
    _tell_old(wf, s, case, old, why, [])
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
