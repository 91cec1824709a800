"""Who each waiting ask would ask now, against the directory as it stands (SPEC 5, 10).

`check_case` re-resolves every waiting ask of a case without side effects, so a
reorganisation plan can be verified inside a transaction that is rolled back;
daemon.cases.reroute acts on the outcomes:

- unchanged: the same people are asked;
- moves: the post changed hands (old and new holders);
- fails: nobody can approve the step now (a reason from routing.resolvers.GAPS);
- resumes: a held case whose step has an approver again;
- held: a held case that stays held.

Asks of named people (added, replacing someone, co-approvals, reconsiderations) stay while
the person is active; an escalation ask stays beside its step.

`check_all` runs over every waiting case (100,000 in bench/orgchange.py). It reads plain
rows, not ORM objects, a chunk of consecutive case ids at a time (no long IN lists to
render and convert), with only the columns a check needs: building, decoding and letting
go of 100,000 full case objects cost more than the checks themselves. The directory is read
once (daemon.directory.lookup.cached_directory).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.cases.holds import held_at, probe_held
from daemon.cases.states import CaseState, StepState
from daemon.directory.lookup import Member, cached_directory, member
from daemon.routing.engine import Facts, Next, Pos, walk
from daemon.store.models import Case, CaseStep

if TYPE_CHECKING:
    from daemon.cases.workflow import Workflow

# Asks made by resolving the route (re-resolved); other kinds name a person on purpose.
ROUTED = {"approver", "returned", "corrected", "admin"}
WAITING = (CaseState.IN_REVIEW, CaseState.ON_HOLD, CaseState.HELD)
# A re-resolved ask starts inside its step and needs an approver there (walk's `needed`):
# the walk stops at that ask, so it never judges a phase or step condition, and the case's
# fields are not read.
NO_FACTS = Facts({}, {}, {})


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


class CaseRow(NamedTuple):
    """The columns of a case that checking it reads."""

    id: int
    number: str
    state: str
    requester_id: str
    workflow_version_id: int | None
    case_type: str
    round: int


class Ask(NamedTuple):
    """The columns of a pending step that checking it reads."""

    id: int
    case_id: int
    slot: int
    kind: str
    approver_id: str
    phase: str
    step_name: str
    pos: dict[str, Any] | None


CASE_COLUMNS = (Case.id, Case.number, Case.state, Case.requester_id, Case.workflow_version_id,
                Case.case_type, Case.round)
ASK_COLUMNS = (CaseStep.id, CaseStep.case_id, CaseStep.slot, CaseStep.kind,
               CaseStep.approver_id, CaseStep.phase, CaseStep.step_name, CaseStep.pos)


@dataclass
class Loaded:
    """What checking cases reads besides the directory, for a range of case ids at once."""

    pending: dict[int, list[Ask]] = field(default_factory=dict)  # case id -> by seq
    # case id -> (round, slot, seq, approver) of every approved step
    approved: dict[int, list[tuple[int, int, int, str]]] = field(default_factory=dict)
    # Re-resolving a waiting ask reads only who asked and who acted last (NO_FACTS): one
    # walk serves every case with the same template, ask, requester and last actor.
    walks: dict[tuple[Any, ...], Next] = field(default_factory=dict)

    def previous_actor(self, s: Session, case: CaseRow, before_slot: int) -> Member | None:
        """Who acted before an ask: the last approver this round, or the requester."""
        prev = max(((slot, seq, pid) for rnd, slot, seq, pid in self.approved.get(case.id, [])
                    if rnd == case.round and slot < before_slot), default=None)
        return member(s, prev[2]) if prev else member(s, case.requester_id)


def load(s: Session, first: int, last: int, loaded: Loaded | None = None) -> Loaded:
    """The pending and approved steps of cases with ids first..last."""
    loaded = loaded or Loaded()
    loaded.pending, loaded.approved = {}, {}
    in_range = CaseStep.case_id.between(first, last)
    for row in s.execute(select(*ASK_COLUMNS).where(in_range,
                                                    CaseStep.state == StepState.PENDING)
                         .order_by(CaseStep.case_id, CaseStep.seq)):
        loaded.pending.setdefault(row.case_id, []).append(Ask(*row))
    for cid, rnd, slot, seq, pid in s.execute(select(
            CaseStep.case_id, CaseStep.round, CaseStep.slot, CaseStep.seq,
            CaseStep.approver_id).where(in_range, CaseStep.state == StepState.APPROVED)):
        loaded.approved.setdefault(cid, []).append((rnd, slot, seq, pid))
    return loaded


def _person_gone(m: Member | None) -> bool:
    return m is None or not m.person.active


def check_case(wf: Workflow, s: Session, case: Case | CaseRow,
               loaded: Loaded | None = None) -> list[Check]:
    """`loaded`: the steps of a range of cases holding this one (check_all); without it
    they are read for this case alone (after flushing what the caller changed)."""
    row = CaseRow(case.id, case.number, case.state, case.requester_id,
                  case.workflow_version_id, case.case_type, case.round)
    if loaded is None:
        s.flush()
        loaded = load(s, case.id, case.id)
    requester = member(s, row.requester_id)
    if row.state == CaseState.HELD:
        full = case if isinstance(case, Case) else s.get(Case, case.id)
        return [_check_held(wf, s, full, requester)] if full is not None else []
    if row.state not in WAITING:
        return []
    slots: dict[int, list[Ask]] = defaultdict(list)
    for st in loaded.pending.get(row.id, []):
        slots[st.slot].append(st)
    return [_check_slot(wf, s, row, requester, slot, steps, loaded)
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
                       reason=(res.gap if res else "") or gap,
                       why=res.explanation if res else gap)
    return replace(base, outcome="resumes",
                   new=tuple(m.id for m in res.approvers), why=res.explanation)


def _label(wf: Workflow, s: Session, case: Case, pos: Pos) -> str:
    template = wf.template_of(s, case)
    if pos.phase >= len(template.phases):
        return "-"
    phase = template.phases[pos.phase]
    return f"{phase.name}/{phase.steps[pos.step].name}" if pos.step < len(phase.steps) \
        else phase.name


def _check_slot(wf: Workflow, s: Session, case: CaseRow, requester: Member | None, slot: int,
                steps: list[Ask], loaded: Loaded) -> Check:
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
    last = loaded.previous_actor(s, case, slot) or requester
    key = (case.workflow_version_id, case.case_type, Pos.of(rep.pos), requester.id, last.id)
    nxt = loaded.walks.get(key)
    if nxt is None:
        template = wf.registry.of_version(s, case.workflow_version_id, case.case_type)
        nxt = loaded.walks[key] = walk(s, template, Pos.of(rep.pos), True, NO_FACTS,
                                       case.case_type, requester, last,
                                       wf.today(), needed=True)
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


CHUNK = 1000  # cases read at once


def check_all(wf: Workflow, s: Session) -> list[Check]:
    """Every waiting case, in case order."""
    out: list[Check] = []
    loaded = Loaded()
    after = 0
    with cached_directory(s):
        while True:
            rows = [CaseRow(*r) for r in s.execute(
                select(*CASE_COLUMNS).where(Case.state.in_(WAITING), Case.id > after)
                .order_by(Case.id).limit(CHUNK))]
            if not rows:
                return out
            load(s, rows[0].id, rows[-1].id, loaded)
            for row in rows:
                out.extend(check_case(wf, s, row, loaded))
            after = rows[-1].id
