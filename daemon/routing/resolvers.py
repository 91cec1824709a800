"""Approver resolvers: each answers "who is asked at this step, and why" (SPEC 5).

A resolution either names approvers, says the step has nobody (more) to ask, so routing
moves on (`exhausted`), or says someone was required and nobody was found (`failed`), so
the administrator is asked instead and the case never vanishes.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from sqlalchemy.orm import Session

from daemon.directory.lookup import (
    Member,
    active_positions,
    member,
    parent_unit,
    relations_for,
    role_holders,
    unit,
    unit_members,
)
from daemon.routing.templates import Step


@dataclass(frozen=True)
class RouteContext:
    case_type: str
    requester: Member
    last_actor: Member
    on: datetime.date  # the case date: relations must be valid on it
    sub: int = 0  # position inside a multi-part step (business group roles)


@dataclass(frozen=True)
class Resolution:
    approvers: tuple[Member, ...]
    resolver: str
    explanation: str
    exhausted: bool = False
    failed: bool = False
    mode: str = "single"  # several approvers: "any" one decides, or "all" must approve
    gap: str = ""  # why nobody: one of GAPS, for holds and reorganisation reports


# Why a step that needs an approver has none (fixed list: reports and holds name these).
GAPS = ("requester gone", "requester's unit gone", "role vacant", "role or unit gone",
        "no approver left above", "relation expired", "approver gone")


def _pos(m: Member) -> str:
    return m.position.name if m.position else "no position"


def _unit_name(s: Session, unit_id: str) -> str:
    found = unit(s, unit_id)
    return found.name if found else unit_id


def _active_unit(s: Session, unit_id: str) -> bool:
    found = unit(s, unit_id)
    return found is not None and found.active


def _vacant(s: Session, lo: int, hi: int | None) -> list[str]:
    """Names of active positions ranked lo..hi (inclusive; hi None: no limit)."""
    return [p.name for p in active_positions(s) if p.rank >= lo and (hi is None or p.rank <= hi)]


def _several(found: list[Member], resolver: str, why: str, mode: str = "any") -> Resolution:
    if len(found) == 1:
        return Resolution((found[0],), resolver, why)
    return Resolution(tuple(found), resolver, why, mode=mode)


def rank_above(s: Session, step: Step, ctx: RouteContext) -> Resolution:
    """The lowest rank strictly above the last actor, in their unit or the step's unit."""
    actor = ctx.last_actor
    unit_id = step.unit or (actor.unit.id if actor.unit else None)
    if actor.rank is None or unit_id is None:
        return Resolution((), "rank-above", f"{actor.person.name} has no post", exhausted=True,
                          gap="no approver left above")
    lo = max(actor.rank + 1, step.min_rank if step.min_rank is not None else actor.rank + 1)
    hi = step.max_rank
    above = [m for m in unit_members(s, unit_id)
             if m.rank is not None and m.rank >= lo and (hi is None or m.rank <= hi)
             and m.id not in (actor.id, ctx.requester.id)]
    name = _unit_name(s, unit_id)
    limit = f" up to rank {hi}" if hi is not None else ""
    if not above:
        vacant = _vacant(s, lo, hi)
        gap = f" ({', '.join(vacant)} vacant)" if vacant else ""
        return Resolution((), "rank-above", f"nobody in {name} ranks above {actor.person.name} "
                          f"({_pos(actor)}){limit}{gap}", exhausted=True,
                          gap="no approver left above")
    best_rank = min(m.rank or 0 for m in above)
    best = [m for m in above if m.rank == best_rank]
    vacant = _vacant(s, actor.rank + 1, best_rank - 1)
    why = f"lowest rank above {_pos(actor)} in {name}{limit}: " + ", ".join(
        f"{m.person.name} ({_pos(m)})" for m in best)
    if vacant:
        why += f"; vacant in {name}, stepped over: {', '.join(vacant)}"
    return _several(best, "rank-above", why)


def role(s: Session, step: Step, ctx: RouteContext) -> Resolution:
    """Holder of the role in a unit (given, or the last actor's), climbing to parents."""
    assert step.role is not None
    start = step.unit or (ctx.last_actor.unit.id if ctx.last_actor.unit else None)
    if start is None or not _active_unit(s, start):
        return Resolution((), "role", f"unit {start or '-'} for {step.role} is not in the "
                          "directory", failed=True, gap="role or unit gone")
    unit_id: str | None = start
    tried: list[str] = []
    while unit_id is not None:
        holders = [m for m in role_holders(s, unit_id, step.role)
                   if m.id != ctx.requester.id]
        tried.append(_unit_name(s, unit_id))
        if holders:
            climbed = f" (climbed from {' → '.join(tried)})" if len(tried) > 1 else ""
            return _several(holders, "role", f"{step.role} of {tried[-1]}{climbed}: "
                            + ", ".join(m.person.name for m in holders))
        if not step.climb:
            break
        parent = parent_unit(s, unit_id)
        unit_id = parent.id if parent else None
    return Resolution((), "role", f"nobody holds {step.role} in {' → '.join(tried) or '-'}"
                      + (" (reached the top of the organisation)" if step.climb else ""),
                      failed=True, gap="role vacant")


def relation(s: Session, step: Step, ctx: RouteContext) -> Resolution:
    """The responsible approver registered for the requester, or else their unit."""
    req = ctx.requester
    for label, rels in (
        ("the requester", relations_for(s, person_id=req.id, on=ctx.on)),
        (f"unit {req.unit.name if req.unit else '-'}",
         relations_for(s, unit_id=req.unit.id, on=ctx.on) if req.unit else []),
    ):
        found = [m for r in rels if (m := member(s, r.approver_id)) and m.person.active]
        if found:
            return _several(found, "relation", f"registered approver for {label} on "
                            f"{ctx.on}: " + ", ".join(m.person.name for m in found))
    return Resolution((), "relation", f"no approval relation for {req.person.name} or their "
                      f"unit is valid on {ctx.on}", failed=True, gap="relation expired")


def business(s: Session, step: Step, ctx: RouteContext) -> Resolution:
    """The business group for this case type: its roles in order (e.g. staff, then manager)."""
    group = step.groups.get(ctx.case_type) or step.groups.get("default")
    if group is None:
        return Resolution((), "business", f"no business group for case type {ctx.case_type}",
                          exhausted=True)
    roles = list(group["roles"])
    if ctx.sub >= len(roles):
        return Resolution((), "business", f"every role of {group['unit']} has approved",
                          exhausted=True)
    wanted = roles[ctx.sub]
    holders = [m for m in role_holders(s, group["unit"], wanted) if m.id != ctx.requester.id]
    name = _unit_name(s, group["unit"])
    if not _active_unit(s, group["unit"]):
        return Resolution((), "business", f"unit {name} is not in the directory", failed=True,
                          gap="role or unit gone")
    if not holders:
        return Resolution((), "business", f"nobody holds {wanted} in {name}", failed=True,
                          gap="role vacant")
    return _several(holders, "business", f"business group for {ctx.case_type}: {wanted} of "
                    f"{name} ({ctx.sub + 1} of {len(roles)}): "
                    + ", ".join(m.person.name for m in holders))


def fixed(s: Session, step: Step, ctx: RouteContext) -> Resolution:
    members: list[Member] = []
    missing: list[str] = []
    for pid in step.people:
        m = member(s, pid)
        if m is not None and m.person.active:
            members.append(m)
        else:
            missing.append(pid)
    if missing:
        return Resolution((), "fixed", "not in the directory (or inactive): "
                          + ", ".join(missing), failed=True, gap="approver gone")
    word = "any one of" if step.mode == "any" else "all of"
    return _several(members, "fixed", f"{word} " + ", ".join(m.person.name for m in members),
                    mode=step.mode)


RESOLVE = {"rank-above": rank_above, "role": role, "relation": relation,
           "business": business, "fixed": fixed}


def resolve(s: Session, step: Step, ctx: RouteContext) -> Resolution:
    return RESOLVE[step.resolver](s, step, ctx)
