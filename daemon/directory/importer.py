"""Apply a validated directory file to the store and report what changed.

People, units, positions, roles and relations absent from the new file are deactivated,
never deleted: case history keeps pointing at them.

Diff lines: ``+ role eng/head suzuki``, ``- role ...``, ``~ role ... (active)`` (back after
a deactivation); ``+ relation watanabe->unit sales responsible 2026-01-01..2027-12-31``
(``2026-01-01..`` when open-ended), ``~ relation ... (valid_to)`` and ``- relation ...``.
A relation is identified by approver, object, kind and valid_from; valid_to and
registered_by are its changeable attributes. ``! ...`` lines are warnings: the file was
applied, but a relation names someone who is not an active person in it (and so has no
effect until they are); on an administrator's import (``rules``) only a relation that has
ended can, as the relation rules refuse the others (daemon.directory.filerules).
A person's qualifications (``may_register``, ``may_approve``) change like their other
fields (``~ person kato (may_approve)``), also when the file stops giving one (NULL: by rank).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from daemon.directory.filerules import FileRules, file_refusals
from daemon.directory.loader import (
    DirectoryData,
    DirectoryFileError,
    format_for,
    parse_directory,
)
from daemon.directory.lookup import forget_directory
from daemon.directory.records import RelationRecord
from daemon.store.db import Store
from daemon.store.directory_models import ApprovalRelation, RoleAssignment
from daemon.store.models import DirectoryImport, OrgUnit, Person, PersonEmail, Position


@dataclass
class DirectoryDiff:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # applied anyway; not changes

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.deactivated)

    def lines(self) -> list[str]:
        out = [f"+ {x}" for x in self.added] + [f"~ {x}" for x in self.changed]
        out += [f"- {x}" for x in self.deactivated]
        return (out or ["no changes"]) + [f"! {x}" for x in self.warnings]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "added": self.added, "changed": self.changed, "deactivated": self.deactivated,
        }  # fmt: skip
        if self.warnings:
            out["warnings"] = self.warnings
        return out


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


def _sync_roles(s: Session, data: DirectoryData, diff: DirectoryDiff) -> None:
    existing = {(r.unit_id, r.role, r.person_id): r for r in s.scalars(select(RoleAssignment))}
    wanted = [(r.unit, r.role, r.person) for r in data.roles]
    for key in wanted:
        unit, role, person = key
        row = existing.get(key)
        if row is None:
            s.add(RoleAssignment(unit_id=unit, role=role, person_id=person, active=True))
            diff.added.append(f"role {unit}/{role} {person}")
        elif not row.active:
            row.active = True
            diff.changed.append(f"role {unit}/{role} {person} (active)")
    for (unit, role, person), row in sorted(existing.items()):
        if (unit, role, person) not in wanted and row.active:
            row.active = False
            diff.deactivated.append(f"role {unit}/{role} {person}")


_RelationKey = tuple[str, str, str, str, date]  # approver, object type and id, kind, from


def _relation_key(r: RelationRecord) -> _RelationKey:
    return (r.approver, r.object_type, r.object_id, r.kind, r.valid_from)


def relation_record(row: ApprovalRelation) -> RelationRecord:
    object_type: Literal["person", "unit"] = "unit" if row.object_type == "unit" else "person"
    return RelationRecord(row.approver_id, object_type, row.object_id, row.kind,
                          row.valid_from, row.valid_to, row.registered_by)  # fmt: skip


def _sync_relations(s: Session, data: DirectoryData, diff: DirectoryDiff, now: datetime) -> None:
    existing = {_relation_key(relation_record(r)): r for r in s.scalars(select(ApprovalRelation))}
    wanted = {_relation_key(r): r for r in data.relations}
    for key, rel in wanted.items():
        row = existing.get(key)
        if row is None:
            s.add(ApprovalRelation(
                approver_id=rel.approver, object_type=rel.object_type, object_id=rel.object_id,
                kind=rel.kind, valid_from=rel.valid_from, valid_to=rel.valid_to,
                registered_by=rel.registered_by, registered_at=now, active=True,
            ))  # fmt: skip
            diff.added.append(f"relation {rel.describe()}")
            continue
        changes = [k for k in ("valid_to", "registered_by") if getattr(row, k) != getattr(rel, k)]
        if row.source != "file":  # the file now names a relation a department registered
            row.source = "file"
            changes.append("source")
        row.valid_to, row.registered_by = rel.valid_to, rel.registered_by
        if not row.active:
            row.active, row.registered_at = True, now  # registered again
            changes.append("active")
        if changes:
            diff.changed.append(f"relation {rel.describe()} ({', '.join(sorted(changes))})")
    for key, row in sorted(existing.items(), key=lambda kv: str(kv[0])):
        if key not in wanted and row.active and row.source == "file":
            row.active = False
            diff.deactivated.append(f"relation {relation_record(row).describe()}")
    active = {p.id for p in data.people if p.active}
    for rel in data.relations:
        names = [("approver", rel.approver)]
        if rel.object_type == "person":
            names.append(("person", rel.object_id))
        for role, pid in names:
            if pid not in active:
                diff.warnings.append(f"relation {rel.describe()}: {role} {pid!r} is not an "
                                     "active person in the directory")


def check_relations(s: Session, data: DirectoryData, rules: FileRules, now: datetime) -> None:
    """Refuse the file (DirectoryFileError, `file:line:` reasons) if a relation in it breaks
    the registration rules, judged against the departments' relations in force."""
    today = rules.today(now)
    rows = s.scalars(select(ApprovalRelation).where(
        ApprovalRelation.source == "registered", ApprovalRelation.active.is_(True),
        or_(ApprovalRelation.valid_to.is_(None), ApprovalRelation.valid_to >= today))
        .order_by(ApprovalRelation.id))
    errors = file_refusals(data, [(r.id, relation_record(r)) for r in rows], rules, today)
    if errors:
        raise DirectoryFileError(errors)


def apply_directory(s: Session, data: DirectoryData, now: datetime | None = None,
                    rules: FileRules | None = None) -> DirectoryDiff:
    """Bring the store in line with ``data``; ``now`` stamps newly registered relations.

    With ``rules`` (an administrator's import) the file's relations are judged first and a
    file that breaks a rule changes nothing; without (a backup put back) they are not."""
    if rules is not None:
        check_relations(s, data, rules, now or datetime.now(UTC))
    forget_directory(s)  # lookups cached in this transaction no longer hold
    diff = DirectoryDiff()
    _sync(s, OrgUnit, "unit", {
        u.id: {"name": u.name, "name_ja": u.name_ja, "parent_id": u.parent} for u in data.units
    }, diff)
    _sync(s, Position, "position", {
        p.id: {"name": p.name, "name_ja": p.name_ja, "rank": p.rank} for p in data.positions
    }, diff)
    _sync(s, Person, "person", {
        p.id: {"name": p.name, "name_ja": p.name_ja, "locale": p.locale, "unit_id": p.unit,
               "position_id": p.position, "may_register": p.may_register,
               "may_approve": p.may_approve}
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
    _sync_roles(s, data, diff)
    _sync_relations(s, data, diff, now or datetime.now(UTC))
    return diff


def read_directory_file(path: Path) -> tuple[DirectoryData, str]:
    """Parse and validate the file, hashing exactly the bytes that were parsed."""
    fmt = format_for(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DirectoryFileError([f"{path}: cannot read file: {exc.strerror or exc}"]) from exc
    return parse_directory(raw, fmt, str(path)), hashlib.sha256(raw).hexdigest()


AfterImport = Callable[[Session, DirectoryDiff], None]


def import_directory_data(
    store: Store, data: DirectoryData, digest: str, source: str, now: datetime,
    after: AfterImport | None = None, rules: FileRules | None = None,
) -> DirectoryDiff:
    """Apply already-validated data in one transaction and record the import.

    `after` runs in the same transaction (the waiting cases are re-resolved there), so a
    crash leaves either the old directory and routing or the new, never a mix. `rules`:
    the relation rules to judge the file by (DirectoryFileError when it breaks one).
    """
    with store.transaction() as s:
        diff = apply_directory(s, data, now, rules)
        s.add(DirectoryImport(at=now, source=source, sha256=digest, diff=diff.as_dict()))
        if after is not None and not diff.empty:
            s.flush()
            after(s, diff)
    return diff


def import_directory_file(
    store: Store, path: Path, now: datetime, unless_digest: str | None = None,
    after: AfterImport | None = None, rules: FileRules | None = None,
) -> DirectoryDiff | None:
    """Validate (raising DirectoryFileError with every problem) then apply in one transaction.

    With `unless_digest`, an unchanged file (same SHA-256) is not applied again: None.
    """
    data, digest = read_directory_file(path)
    if digest == unless_digest:
        return None
    return import_directory_data(store, data, digest, str(path), now, after, rules)


def last_import_digest(store: Store, source: str) -> str | None:
    with store.transaction() as s:
        return s.scalar(
            select(DirectoryImport.sha256)
            .where(DirectoryImport.source == source)
            .order_by(DirectoryImport.id.desc())
            .limit(1)
        )
