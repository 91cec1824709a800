"""Read-side directory queries used by intake, routing and notifications.

Work that resolves many cases in one transaction (re-routing every waiting case after a
directory change) wraps itself in `cached_directory(s)`: the directory is read once into
memory and every function here answers from it, instead of a few queries per case. The
cache lives in the session's `info`, is dropped by `apply_directory`, when the block ends,
and at the end of the transaction, so it never answers for a directory that changed.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, event, or_, select
from sqlalchemy.orm import Session

from daemon.store.directory_models import ApprovalRelation, RoleAssignment
from daemon.store.models import OrgUnit, Person, PersonEmail, Position


@dataclass(frozen=True)
class Member:
    """A person joined with their post: what routing and templates need."""

    person: Person
    unit: OrgUnit | None
    position: Position | None

    @property
    def id(self) -> str:
        return self.person.id

    @property
    def rank(self) -> int | None:
        return self.position.rank if self.position else None

    @property
    def locale(self) -> str:
        return self.person.locale

    def display_name(self, locale: str) -> str:
        return self.person.name_ja if locale == "ja" else self.person.name

    def snapshot(self) -> dict[str, Any]:
        """The person's attributes as they are now, frozen into case history."""
        p, u, pos = self.person, self.unit, self.position
        return {
            "id": p.id,
            "name": p.name,
            "name_ja": p.name_ja,
            "unit": u.id if u else None,
            "unit_name": u.name if u else None,
            "unit_name_ja": u.name_ja if u else None,
            "position": pos.id if pos else None,
            "position_name": pos.name if pos else None,
            "position_name_ja": pos.name_ja if pos else None,
            "rank": pos.rank if pos else None,
            "active": p.active,
        }


CACHE_KEY = "ringi.directory_cache"
DIRECTORY_ROWS = (Person, OrgUnit, Position, PersonEmail, RoleAssignment, ApprovalRelation)


class DirectoryCache:
    """The whole directory of one transaction, read in a few queries."""

    def __init__(self, s: Session) -> None:
        self.people = {p.id: p for p in s.scalars(select(Person))}
        self.units = {u.id: u for u in s.scalars(select(OrgUnit))}
        self.positions = {p.id: p for p in s.scalars(select(Position))}
        self.ranked = sorted((p for p in self.positions.values() if p.active),
                             key=lambda p: p.rank)
        self.in_unit: dict[str, list[str]] = defaultdict(list)
        for p in sorted(self.people.values(), key=lambda p: p.id):
            if p.active:
                self.in_unit[p.unit_id].append(p.id)
        self.roles: dict[tuple[str, str], list[str]] = defaultdict(list)
        for r in s.scalars(select(RoleAssignment).where(RoleAssignment.active.is_(True))):
            self.roles[(r.unit_id, r.role)].append(r.person_id)
        for ids in self.roles.values():
            ids.sort()
        self.relations: dict[tuple[str, str, str], list[ApprovalRelation]] = defaultdict(list)
        for rel in s.scalars(select(ApprovalRelation).where(ApprovalRelation.active.is_(True))
                             .order_by(ApprovalRelation.approver_id,
                                       ApprovalRelation.valid_from, ApprovalRelation.id)):
            self.relations[(rel.object_type, rel.object_id, rel.kind)].append(rel)
        self.emails: dict[str, str] = {}
        for e in s.scalars(select(PersonEmail).order_by(PersonEmail.person_id,
                                                        PersonEmail.ordinal)):
            self.emails.setdefault(e.person_id, e.email)
        self._members: dict[str, Member | None] = {}

    def member(self, person_id: str) -> Member | None:
        if person_id not in self._members:
            p = self.people.get(person_id)
            self._members[person_id] = None if p is None else Member(
                p, self.units.get(p.unit_id), self.positions.get(p.position_id))
        return self._members[person_id]

    def active_members(self, ids: list[str]) -> list[Member]:
        return [m for pid in ids if (m := self.member(pid)) is not None and m.person.active]


def _cache(s: Session) -> DirectoryCache | None:
    found = s.info.get(CACHE_KEY)
    return found if isinstance(found, DirectoryCache) else None


@contextmanager
def cached_directory(s: Session) -> Iterator[DirectoryCache]:
    """Answer directory lookups in `s` from memory for the duration of the block."""
    outer = _cache(s)
    if outer is not None:  # nested: the outer block's cache serves
        yield outer
        return
    s.flush()  # the cache reads what this transaction has written
    cache = s.info[CACHE_KEY] = DirectoryCache(s)
    try:
        yield cache
    finally:
        if s.info.get(CACHE_KEY) is cache:
            del s.info[CACHE_KEY]


def forget_directory(s: Session) -> None:
    """The directory changed in this transaction: lookups read the store again."""
    s.info.pop(CACHE_KEY, None)


def reread_directory(s: Session) -> None:
    """Directory rows this session loaded are read again when next used: another instance
    may have replaced the directory while this transaction waited for it (a reorganisation's
    commit holds its lock), and a row already loaded would otherwise keep the old post."""
    forget_directory(s)
    for obj in list(s.identity_map.values()):
        if isinstance(obj, DIRECTORY_ROWS) and obj not in s.dirty and obj not in s.new:
            s.expire(obj)


@event.listens_for(Session, "after_transaction_end")
def _transaction_ended(s: Session, transaction: Any) -> None:
    if transaction.parent is None:  # the outermost transaction: never outlive it
        forget_directory(s)


def unit(s: Session, unit_id: str) -> OrgUnit | None:
    cache = _cache(s)
    return cache.units.get(unit_id) if cache is not None else s.get(OrgUnit, unit_id)


def active_positions(s: Session) -> list[Position]:
    """Active positions, lowest rank first."""
    cache = _cache(s)
    if cache is not None:
        return cache.ranked
    return list(s.scalars(select(Position).where(Position.active.is_(True))
                          .order_by(Position.rank)))


def member(s: Session, person_id: str) -> Member | None:
    cache = _cache(s)
    if cache is not None:
        return cache.member(person_id)
    person = s.get(Person, person_id)
    if person is None:
        return None
    return Member(person, s.get(OrgUnit, person.unit_id), s.get(Position, person.position_id))


def member_by_email(s: Session, address: str) -> Member | None:
    """Active person owning this address (case-insensitive)."""
    pid = s.scalar(select(PersonEmail.person_id).where(PersonEmail.email == address.lower()))
    if pid is None:
        return None
    found = member(s, pid)
    return found if found and found.person.active else None


def primary_email(s: Session, person_id: str) -> str | None:
    cache = _cache(s)
    if cache is not None:
        return cache.emails.get(person_id)
    return s.scalar(
        select(PersonEmail.email).where(PersonEmail.person_id == person_id)
        .order_by(PersonEmail.ordinal).limit(1)
    )


def unit_members(s: Session, unit_id: str) -> list[Member]:
    cache = _cache(s)
    if cache is not None:
        return cache.active_members(cache.in_unit.get(unit_id, []))
    people = s.scalars(
        select(Person).where(Person.unit_id == unit_id, Person.active.is_(True))
        .order_by(Person.id)
    ).all()
    unit = s.get(OrgUnit, unit_id)
    return [Member(p, unit, s.get(Position, p.position_id)) for p in people]


def _members(s: Session, people: list[Person]) -> list[Member]:
    return [Member(p, s.get(OrgUnit, p.unit_id), s.get(Position, p.position_id)) for p in people]


def role_holders(s: Session, unit_id: str, role: str) -> list[Member]:
    """Active people holding ``role`` in ``unit_id`` (by person id); no climbing here.

    A holder's ``Member.unit`` is their own unit, which need not be ``unit_id``.
    """
    cache = _cache(s)
    if cache is not None:
        return cache.active_members(cache.roles.get((unit_id, role), []))
    people = s.scalars(
        select(Person)
        .join(RoleAssignment, RoleAssignment.person_id == Person.id)
        .where(RoleAssignment.unit_id == unit_id, RoleAssignment.role == role,
               RoleAssignment.active.is_(True), Person.active.is_(True))
        .order_by(Person.id)
    ).all()
    return _members(s, list(people))


def parent_unit(s: Session, unit_id: str) -> OrgUnit | None:
    """The unit above ``unit_id``; None at the root (or for an unknown unit)."""
    found = unit(s, unit_id)
    if found is None or found.parent_id is None:
        return None
    return unit(s, found.parent_id)


def _valid_on(on: datetime.date) -> list[ColumnElement[bool]]:
    return [
        ApprovalRelation.active.is_(True),
        ApprovalRelation.valid_from <= on,
        or_(ApprovalRelation.valid_to.is_(None), ApprovalRelation.valid_to >= on),
    ]


def relations_for(
    s: Session,
    *,
    person_id: str | None = None,
    unit_id: str | None = None,
    on: datetime.date,
    kind: str = "responsible",
) -> list[ApprovalRelation]:
    """Active relations of ``kind`` whose object is the person (or unit), valid on ``on``.

    Give exactly one of ``person_id`` / ``unit_id``. Both ends of the period are inclusive;
    an open ``valid_to`` never ends. Ordered by approver id. The approver is not checked
    here: callers decide what an inactive approver means.
    """
    if (person_id is None) == (unit_id is None):
        raise ValueError("give exactly one of person_id or unit_id")
    object_type, object_id = ("person", person_id) if person_id is not None else ("unit", unit_id)
    cache = _cache(s)
    if cache is not None:
        return [r for r in cache.relations.get((object_type, str(object_id), kind), [])
                if r.valid_from <= on and (r.valid_to is None or r.valid_to >= on)]
    return list(s.scalars(
        select(ApprovalRelation)
        .where(ApprovalRelation.object_type == object_type,
               ApprovalRelation.object_id == object_id,
               ApprovalRelation.kind == kind, *_valid_on(on))
        .order_by(ApprovalRelation.approver_id, ApprovalRelation.valid_from,
                  ApprovalRelation.id)
    ).all())


def proxies_of(s: Session, approver_id: str, on: datetime.date) -> list[Member]:
    """Active people registered as proxy for ``approver_id`` on ``on`` (by person id)."""
    ids = {r.approver_id for r in relations_for(s, person_id=approver_id, on=on, kind="proxy")}
    cache = _cache(s)
    if cache is not None:
        return cache.active_members(sorted(ids))
    people = s.scalars(
        select(Person).where(Person.id.in_(ids), Person.active.is_(True)).order_by(Person.id)
    ).all() if ids else []
    return _members(s, list(people))
