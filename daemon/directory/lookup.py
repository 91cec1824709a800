"""Read-side directory queries used by intake, routing and notifications."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, or_, select
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


def member(s: Session, person_id: str) -> Member | None:
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
    return s.scalar(
        select(PersonEmail.email).where(PersonEmail.person_id == person_id)
        .order_by(PersonEmail.ordinal).limit(1)
    )


def unit_members(s: Session, unit_id: str) -> list[Member]:
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
    unit = s.get(OrgUnit, unit_id)
    if unit is None or unit.parent_id is None:
        return None
    return s.get(OrgUnit, unit.parent_id)


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
    people = s.scalars(
        select(Person).where(Person.id.in_(ids), Person.active.is_(True)).order_by(Person.id)
    ).all() if ids else []
    return _members(s, list(people))
