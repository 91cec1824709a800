"""Walking a workflow template: which step is next, who is asked, and why steps are skipped.

Position is (phase, step, sub). `sub` counts inside a step that asks several people in turn
(a business group's roles); a rank-above step stays where it is and climbs from whoever
approved last, until its resolver has nobody more to ask.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.orm import Session

from daemon.conditions.expr import Compiled, evaluate
from daemon.directory.lookup import Member
from daemon.routing.resolvers import Resolution, RouteContext, resolve
from daemon.routing.templates import Phase, Step, Template


@dataclass(frozen=True)
class Pos:
    phase: int = 0
    step: int = 0
    sub: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"phase": self.phase, "step": self.step, "sub": self.sub}

    @classmethod
    def of(cls, d: dict[str, Any] | None) -> Pos:
        d = d or {}
        return cls(int(d.get("phase", 0)), int(d.get("step", 0)), int(d.get("sub", 0)))


@dataclass
class Next:
    """The outcome of walking: an ask (approvers at pos), or the end of the route."""

    pos: Pos | None
    resolution: Resolution | None
    notes: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.pos is None


@dataclass(frozen=True)
class Facts:
    """What conditions see: the case's fields and a little context."""

    fields: dict[str, Any]
    kinds: dict[str, str]
    context: dict[str, Any]


def _judge(cond: Compiled | None, facts: Facts) -> tuple[bool, str]:
    if cond is None:
        return True, ""
    out = evaluate(cond, facts.fields, facts.kinds, facts.context)
    if out.error:
        return False, f"condition `{cond.source}` could not be evaluated ({out.error})"
    if out.value is None:
        return False, f"condition `{cond.source}` needs {', '.join(out.missing)}, which is unset"
    shown = ", ".join(f"{f}={facts.fields.get(f)!r}" for f in sorted(cond.fields)
                      if f in facts.fields)
    verdict = "holds" if out.value else "does not hold"
    return bool(out.value), f"condition `{cond.source}` {verdict}" + (f" ({shown})" if shown
                                                                       else "")


def after_approval(template: Template, pos: Pos) -> tuple[Pos, bool]:
    """Where to continue once the ask at `pos` is approved; True = still inside that step."""
    step = template.phases[pos.phase].steps[pos.step]
    if step.resolver == "rank-above":
        return pos, True
    if step.resolver == "business":
        return Pos(pos.phase, pos.step, pos.sub + 1), True
    return next_step(template, pos), False


def next_step(template: Template, pos: Pos) -> Pos:
    if pos.step + 1 < len(template.phases[pos.phase].steps):
        return Pos(pos.phase, pos.step + 1, 0)
    return Pos(pos.phase + 1, 0, 0)


def walk(s: Session, template: Template, start: Pos, inside: bool, facts: Facts,
         case_type: str, requester: Member, last_actor: Member,
         on: datetime.date, needed: bool = False) -> Next:
    """From `start` (already inside that step, or entering it), find the next ask.

    `needed`: the ask at `start` was waiting for somebody (a re-resolution after the
    directory changed), so finding nobody there is a failure, never "step complete": a case
    must not move on, let alone end approved, because its approver disappeared.
    """
    notes: list[str] = []
    pos = start
    while pos.phase < len(template.phases):
        phase: Phase = template.phases[pos.phase]
        entering_phase = pos.step == 0 and pos.sub == 0 and not inside
        if entering_phase and phase.when is not None:
            ok, why = _judge(phase.when, facts)
            notes.append(f"phase {phase.name}: {why}" + ("" if ok else "; phase skipped"))
            if not ok:
                pos, inside = Pos(pos.phase + 1, 0, 0), False
                continue
        step: Step = phase.steps[pos.step]
        if not inside and pos.sub == 0 and step.when is not None:
            ok, why = _judge(step.when, facts)
            notes.append(f"step {phase.name}/{step.name}: {why}" + ("" if ok else
                                                                    "; step skipped"))
            if not ok:
                pos, inside = next_step(template, pos), False
                continue
        label = f"step {phase.name}/{step.name} ({step.resolver})"
        if step.resolver == "system":  # stamp, publish: ringi acts, nobody is asked
            notes.append(f"{label}: {step.action} by ringi")
            return Next(pos, Resolution((), "system", f"{step.action} by ringi"), notes)
        res = resolve(s, step, RouteContext(case_type, requester, last_actor, on, pos.sub))
        if needed and pos == start and not res.approvers:
            notes.append(f"{label}: {res.explanation}; this ask needs an approver")
            return Next(pos, replace(res, failed=True, exhausted=False,
                                     gap=res.gap or "approver gone"), notes)
        if res.approvers or res.failed:
            notes.append(f"{label}: {res.explanation}")
            return Next(pos, res, notes)
        notes.append(f"{label}: {res.explanation}; step complete")
        pos, inside = next_step(template, pos), False
    return Next(None, None, notes)
