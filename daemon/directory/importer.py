"""Apply a validated directory file to the store and report what changed.

People, units and positions absent from the new file are deactivated, never deleted: case
history keeps pointing at them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from daemon.directory.loader import (
    DirectoryData,
    DirectoryFileError,
    format_for,
    parse_directory,
)
from daemon.store.db import Store
from daemon.store.models import DirectoryImport, OrgUnit, Person, PersonEmail, Position


@dataclass
class DirectoryDiff:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.deactivated)

    def lines(self) -> list[str]:
        out = [f"+ {x}" for x in self.added] + [f"~ {x}" for x in self.changed]
        out += [f"- {x}" for x in self.deactivated]
        return out or ["no changes"]

    def as_dict(self) -> dict[str, Any]:
        return {"added": self.added, "changed": self.changed, "deactivated": self.deactivated}


def _sync(
    s: Session, model: Any, label: str, wanted: dict[str, dict[str, Any]], diff: DirectoryDiff
) -> None:
    existing = {row.id: row for row in s.scalars(select(model))}
    for key, values in wanted.items():
        row = existing.get(key)
        if row is None:
            s.add(model(id=key, active=True, **values))
            diff.added.append(f"{label} {key}")
            continue
        changes = [k for k, v in values.items() if getattr(row, k) != v]
        if not row.active:
            changes.append("active")
            row.active = True
        for k in changes:
            if k != "active":
                setattr(row, k, values[k])
        if changes:
            diff.changed.append(f"{label} {key} ({', '.join(sorted(changes))})")
    for key, row in existing.items():
        if key not in wanted and row.active:
            row.active = False
            diff.deactivated.append(f"{label} {key}")


def apply_directory(s: Session, data: DirectoryData) -> DirectoryDiff:
    diff = DirectoryDiff()
    _sync(s, OrgUnit, "unit", {
        u.id: {"name": u.name, "name_ja": u.name_ja, "parent_id": u.parent} for u in data.units
    }, diff)
    _sync(s, Position, "position", {
        p.id: {"name": p.name, "name_ja": p.name_ja, "rank": p.rank} for p in data.positions
    }, diff)
    _sync(s, Person, "person", {
        p.id: {"name": p.name, "name_ja": p.name_ja, "locale": p.locale, "unit_id": p.unit,
               "position_id": p.position}
        for p in data.people if p.active
    }, diff)
    # Addresses are rebuilt whole: an address moves with its owner.
    old = {(e.email, e.person_id, e.ordinal) for e in s.scalars(select(PersonEmail))}
    new = {(addr, p.id, i) for p in data.people if p.active for i, addr in enumerate(p.emails)}
    if old != new:
        s.execute(delete(PersonEmail))
        s.flush()
        s.add_all(PersonEmail(email=a, person_id=pid, ordinal=i) for a, pid, i in sorted(new))
        for pid in sorted({pid for _, pid, _ in old ^ new}):
            label = f"person {pid}"
            if not any(x.startswith(label + " ") or x == label for x in diff.added + diff.changed
                       + diff.deactivated):
                diff.changed.append(f"{label} (emails)")
    return diff


def read_directory_file(path: Path) -> tuple[DirectoryData, str]:
    """Parse and validate the file, hashing exactly the bytes that were parsed."""
    fmt = format_for(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DirectoryFileError([f"{path}: cannot read file: {exc.strerror or exc}"]) from exc
    return parse_directory(raw, fmt, str(path)), hashlib.sha256(raw).hexdigest()


def import_directory_data(
    store: Store, data: DirectoryData, digest: str, source: str, now: datetime
) -> DirectoryDiff:
    """Apply already-validated data in one transaction and record the import."""
    with store.transaction() as s:
        diff = apply_directory(s, data)
        s.add(DirectoryImport(at=now, source=source, sha256=digest, diff=diff.as_dict()))
    return diff


def import_directory_file(
    store: Store, path: Path, now: datetime, unless_digest: str | None = None
) -> DirectoryDiff | None:
    """Validate (raising DirectoryFileError with every problem) then apply in one transaction.

    With `unless_digest`, an unchanged file (same SHA-256) is not applied again: None.
    """
    data, digest = read_directory_file(path)
    if digest == unless_digest:
        return None
    return import_directory_data(store, data, digest, str(path), now)


def last_import_digest(store: Store, source: str) -> str | None:
    with store.transaction() as s:
        return s.scalar(
            select(DirectoryImport.sha256)
            .where(DirectoryImport.source == source)
            .order_by(DirectoryImport.id.desc())
            .limit(1)
        )
