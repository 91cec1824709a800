"""The directory as it stands, as data that `apply_directory` takes back (reorganisation
backups): every active unit, position, person, post and relation."""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.directory.records import (
    DirectoryData,
    PersonRecord,
    Position,
    RelationRecord,
    RoleRecord,
    Unit,
)
from daemon.store.directory_models import ApprovalRelation, RoleAssignment
from daemon.store.models import OrgUnit, Person, PersonEmail
from daemon.store.models import Position as PositionRow


def snapshot(s: Session) -> dict[str, Any]:
    """JSON-ready: units, positions, people (with addresses and qualifications, null when
    by rank), roles, relations."""
    emails: dict[str, list[str]] = {}
    for e in s.scalars(select(PersonEmail).order_by(PersonEmail.person_id,
                                                    PersonEmail.ordinal)):
        emails.setdefault(e.person_id, []).append(e.email)
    active = OrgUnit.active.is_(True)
    return {
        "units": [[u.id, u.name, u.name_ja, u.parent_id]
                  for u in s.scalars(select(OrgUnit).where(active).order_by(OrgUnit.id))],
        "positions": [[p.id, p.name, p.name_ja, p.rank] for p in s.scalars(
            select(PositionRow).where(PositionRow.active.is_(True)).order_by(PositionRow.id))],
        "people": [[p.id, p.name, p.name_ja, emails.get(p.id, []), p.locale, p.unit_id,
                    p.position_id, p.may_register, p.may_approve] for p in s.scalars(
            select(Person).where(Person.active.is_(True)).order_by(Person.id))],
        "roles": [[r.unit_id, r.role, r.person_id] for r in s.scalars(
            select(RoleAssignment).where(RoleAssignment.active.is_(True))
            .order_by(RoleAssignment.id))],
        "relations": [[r.approver_id, r.object_type, r.object_id, r.kind,
                       r.valid_from.isoformat(), r.valid_to.isoformat() if r.valid_to else None,
                       r.registered_by] for r in s.scalars(
            select(ApprovalRelation).where(ApprovalRelation.active.is_(True),
                                           ApprovalRelation.source == "file")
            .order_by(ApprovalRelation.id))],
    }


def from_snapshot(data: dict[str, Any]) -> DirectoryData:
    def day(v: str | None) -> datetime.date | None:
        return datetime.date.fromisoformat(v) if v else None

    return DirectoryData(
        units=tuple(Unit(i, n, nj, p) for i, n, nj, p in data["units"]),
        positions=tuple(Position(i, n, nj, int(r)) for i, n, nj, r in data["positions"]),
        # A backup taken before the qualifications existed has seven fields a person.
        people=tuple(PersonRecord(i, n, nj, tuple(em), loc, u, pos, True, *(q or (None, None)))
                     for i, n, nj, em, loc, u, pos, *q in data["people"]),
        roles=tuple(RoleRecord(u, r, p) for u, r, p in data["roles"]),
        relations=tuple(RelationRecord(a, "unit" if t == "unit" else "person", o, k,
                                       day(f) or datetime.date.min, day(to), by)
                        for a, t, o, k, f, to, by in data["relations"]),
    )
