"""Read-side directory queries used by intake, routing and notifications."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

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
