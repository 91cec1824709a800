"""The rules a relation registration must pass (SPEC 7): nobody chooses their own approver.

Pure functions over plain values, so the same rules judge a clerk's mail, a `ringi
relation` command and a directory file import (where the configured administrator is the
neutral registrar and the interested-party rules do not apply to them). A refusal carries a
code (for the answer's wording in each language) and the facts it names; nothing is stored
for a refused change. A change that would leave the object without a responsible approver
for some days is not refused but answered with a warning naming the days (`gaps`): the
registrar confirms it, or stores nothing.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from daemon.directory.records import RelationRecord

UnitRule = Literal["not_member", "member", "none"]
ProxyRule = Literal["responsible", "same_object"]


@dataclass(frozen=True)
class Party:
    """A person as the rules see them: `units` is their unit and every unit above it."""

    id: str
    active: bool
    units: tuple[str, ...]
    may_register: bool  # the registration qualification (directory data, default by rank)
    may_approve: bool  # the approval qualification


@dataclass(frozen=True)
class Policy:
    """What the organisation chose (config `[relations]`)."""

    admin: str  # the neutral registrar: the interested-party rules do not apply to them
    unit_rule: UnitRule = "not_member"  # a registrar for a unit must not / must belong to it
    proxy_rule: ProxyRule = "responsible"  # who may register a proxy
    yearly_cap: int | None = None  # registrations per registrar and calendar year


@dataclass(frozen=True)
class Refusal:
    """Why a change is refused: `code` picks the wording, `facts` fill it in."""

    code: str
    facts: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        """The English wording (the mail templates hold both languages)."""
        return REASONS[self.code].format(**self.facts)


REASONS = {
    "registrar_is_approver": "you cannot register yourself as the approver",
    "registrar_is_object": "you cannot register your own approver",
    "approver_is_object": "{approver} cannot be their own approver",
    "registrar_in_unit": "you belong to {unit}, so you cannot register its approver",
    "registrar_not_in_unit": "only a member of {unit} may register its approver",
    "registrar_not_qualified": "you are not qualified to register approval relations",
    "approver_not_qualified": "{approver} is not qualified to approve",
    "cap_reached": "you have made {cap} registrations this year, the yearly limit",
    "second_responsible": "{object} already has a responsible approver then: {other}",
    "same_relation": "the same relation is already registered then: {other}",
    "proxy_needs_responsible": "only a registered responsible approver may register a proxy",
    "proxy_needs_responsible_of": "only a responsible approver of {object} may register "
                                  "its proxy",
    "unknown_approver": "{approver} is not in the directory",
    "inactive_approver": "{approver} is no longer active in the directory",
    "unknown_object": "{object} is not in the directory",
    "inactive_object": "{object} is no longer active in the directory",
    "unknown_registrar": "you are not in the directory",
    "bad_dates": "{problem}",
    "proxy_for_unit": "a proxy stands in for a person: name a person, not a unit",
    "unknown_relation": "there is no such relation in force",
    "file_relation": "this relation comes from the directory file: the administrator "
                     "changes it there",
    "not_registrar": "only its registrar ({registrar}) or the administrator may change it",
}


def label(r: RelationRecord) -> str:
    """`unit sales` / `person brown`, as answers name an object."""
    return f"{r.object_type} {r.object_id}"


def overlaps(a: RelationRecord, b: RelationRecord) -> bool:
    a_end = a.valid_to or datetime.date.max
    b_end = b.valid_to or datetime.date.max
    return a.valid_from <= b_end and b.valid_from <= a_end


def check(new: RelationRecord, registrar: Party | None, approver: Party | None,
          object_: Party | bool | None, others: Iterable[RelationRecord], *, policy: Policy,
          today: datetime.date, made_this_year: int = 0,
          old: RelationRecord | None = None,
          registrars: Iterable[RelationRecord] = (), past_ok: bool = False) -> list[Refusal]:
    """Every reason to refuse `new` (empty: it may be stored, gaps aside).

    `object_`: the object person, or for a unit whether it is active (None: unknown).
    `others`: the object's relations in force or to come, without `old` (the one an update
    or end replaces). `made_this_year`: the registrar's registrations this calendar year.
    `registrars`: the relations in force or to come whose approver is the registrar (a
    proxy's registrar must be a responsible approver). `past_ok`: the relation may lie in
    the past (a directory file keeps its history; only live registrations start today)."""
    out: list[Refusal] = []
    obj = label(new)
    facts = {"approver": new.approver, "object": obj, "unit": new.object_id}
    out += _dates(new, today, old, past_ok)
    if new.kind == "proxy" and new.object_type == "unit":
        out.append(Refusal("proxy_for_unit"))
    if approver is None:
        out.append(Refusal("unknown_approver", facts))
    elif not approver.active:
        out.append(Refusal("inactive_approver", facts))
    elif not approver.may_approve:
        out.append(Refusal("approver_not_qualified", facts))
    if object_ is None or object_ is False or (isinstance(object_, Party) and not object_.active):
        out.append(Refusal("unknown_object" if object_ is None else "inactive_object", facts))
    if new.object_type == "person" and new.object_id == new.approver:
        out.append(Refusal("approver_is_object", facts))
    standing = [r for r in others if r != old]
    out += _interested(new, registrar, policy, facts, list(registrars), made_this_year, old)
    for r in standing:
        if (r.object_type, r.object_id) != (new.object_type, new.object_id) \
                or not overlaps(r, new):
            continue
        if r.kind == new.kind == "responsible" and r.approver != new.approver:
            out.append(Refusal("second_responsible", {**facts, "other": r.describe()}))
        elif r.kind == new.kind and r.approver == new.approver:
            out.append(Refusal("same_relation", {**facts, "other": r.describe()}))
    return out


def _dates(new: RelationRecord, today: datetime.date,
           old: RelationRecord | None, past_ok: bool = False) -> list[Refusal]:
    problem = ""
    if new.valid_to is not None and new.valid_to < new.valid_from:
        problem = f"valid to {new.valid_to} is before valid from {new.valid_from}"
    elif past_ok:
        pass
    elif old is None and new.valid_from < today:
        problem = f"valid from {new.valid_from} is in the past: a relation starts today or later"
    elif old is not None and new.valid_from != old.valid_from and new.valid_from < today:
        problem = f"valid from cannot move into the past ({new.valid_from})"
    elif old is not None and new.valid_to is not None and new.valid_to < today - \
            datetime.timedelta(days=1) and new.valid_to != old.valid_to:
        problem = f"valid to {new.valid_to} is in the past: end it today at the earliest"
    return [Refusal("bad_dates", {"problem": problem})] if problem else []


def _interested(new: RelationRecord, registrar: Party | None, policy: Policy,
                facts: dict[str, str], holds: Sequence[RelationRecord],
                made_this_year: int, old: RelationRecord | None) -> list[Refusal]:
    """The rules that stop an interested party: none apply to the administrator."""
    if registrar is None:
        return [Refusal("unknown_registrar", facts)]
    if registrar.id == policy.admin:
        return []
    out: list[Refusal] = []
    if not registrar.active:
        out.append(Refusal("unknown_registrar", facts))
    if registrar.id == new.approver:
        out.append(Refusal("registrar_is_approver", facts))
    if new.object_type == "person" and registrar.id == new.object_id:
        out.append(Refusal("registrar_is_object", facts))
    if new.object_type == "unit":
        inside = new.object_id in registrar.units
        if policy.unit_rule == "not_member" and inside:
            out.append(Refusal("registrar_in_unit", facts))
        elif policy.unit_rule == "member" and not inside:
            out.append(Refusal("registrar_not_in_unit", facts))
    if not registrar.may_register:
        out.append(Refusal("registrar_not_qualified", facts))
    if old is None and policy.yearly_cap is not None and made_this_year >= policy.yearly_cap:
        out.append(Refusal("cap_reached", {**facts, "cap": str(policy.yearly_cap)}))
    if new.kind == "proxy":
        mine = [r for r in holds if r.kind == "responsible" and r.approver == registrar.id
                and overlaps(r, new)]
        if policy.proxy_rule == "same_object":
            if not any((r.object_type, r.object_id) == (new.object_type, new.object_id)
                       for r in mine):
                out.append(Refusal("proxy_needs_responsible_of", facts))
        elif not mine:
            out.append(Refusal("proxy_needs_responsible", facts))
    return out


# --- gaps ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    """Days with no responsible approver: `last` None means from `first` on."""

    first: datetime.date
    last: datetime.date | None

    def describe(self) -> str:
        if self.last is None:
            return f"from {self.first} on"
        return str(self.first) if self.first == self.last else f"{self.first} to {self.last}"


def gaps(before: Iterable[RelationRecord], after: Iterable[RelationRecord],
         today: datetime.date) -> list[Gap]:
    """Days from today on that a change leaves without a responsible approver: days that
    had one before it, and holes between days that have one after it. (An object that never
    had a responsible approver is not left without one by a later first registration.)"""
    was = _covered(before, today)
    now = _covered(after, today)
    out: list[Gap] = []
    for first, last in _uncovered(now, today):
        lost = _clip(was, first, last)
        if last is not None and now and first > now[0][0]:  # a hole between covered days
            out.append(Gap(first, last))
        else:
            out += [Gap(a, b) for a, b in lost]
    return _merge(out)


Span = tuple[datetime.date, datetime.date | None]


def _covered(rels: Iterable[RelationRecord], today: datetime.date) -> list[Span]:
    spans = sorted(((max(r.valid_from, today), r.valid_to) for r in rels
                    if r.kind == "responsible" and (r.valid_to is None or r.valid_to >= today)),
                   key=lambda span: span[0])
    merged: list[Span] = []
    for start, end in spans:
        if merged:
            m_start, m_end = merged[-1]
            if m_end is None or start <= m_end + datetime.timedelta(days=1):
                merged[-1] = (m_start, None if m_end is None or end is None else max(m_end, end))
                continue
        merged.append((start, end))
    return merged


def _uncovered(spans: list[Span], today: datetime.date) -> list[Span]:
    out: list[Span] = []
    day: datetime.date | None = today
    for start, end in spans:
        if day is None:
            break
        if start > day:
            out.append((day, start - datetime.timedelta(days=1)))
        day = None if end is None else end + datetime.timedelta(days=1)
    if day is not None:
        out.append((day, None))
    return out


def _clip(spans: list[Span], first: datetime.date, last: datetime.date | None) -> list[Span]:
    out: list[Span] = []
    for start, end in spans:
        a = max(start, first)
        b = end if last is None else (last if end is None else min(end, last))
        if b is None or a <= b:
            out.append((a, b))
    return out


def _merge(found: list[Gap]) -> list[Gap]:
    out: list[Gap] = []
    for g in sorted(found, key=lambda g: g.first):
        if out and (out[-1].last is None or g.first <= out[-1].last + datetime.timedelta(days=1)):
            prev = out[-1]
            out[-1] = replace(prev, last=None if prev.last is None or g.last is None
                              else max(prev.last, g.last))
        else:
            out.append(g)
    return out
