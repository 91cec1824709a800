"""Validate the optional ``roles`` and ``relations`` sections of a directory file.

``roles`` are posts held in a unit ("suzuki is head of eng"); ``relations`` are registered
approval relations ("watanabe is responsible for unit sales from 2026-01-01"). Like the rest
of the file, every problem is reported against the line of the entry (or key) and the file
is refused whole by the caller when anything is wrong.

Units and role holders must be defined in the same file. The people a relation names
(approver, object person, registered_by) are only checked for id syntax: relations are
registrations that may outlive a person's entry, and the importer warns about names it
cannot find instead of refusing the file (see ``daemon.directory.importer``).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Collection
from typing import Literal, Protocol

from daemon.directory.fields import ID, ID_RULE, hint, need, type_name
from daemon.directory.formats import Path
from daemon.directory.records import RelationRecord, RoleRecord

ROLE_KEYS = ("unit", "role", "person")
RELATION_KEYS = ("approver", "person", "unit", "kind", "valid_from", "valid_to", "registered_by")
RELATION_KINDS = ("responsible", "proxy")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class Reporter(Protocol):
    """What the loader's validator offers: report at a path, name a path's line."""

    def error(self, path: Path, message: str) -> None: ...

    def line_of(self, path: Path) -> str: ...


class _Entry:
    """One entry being read; every problem is prefixed with its label ("role #2: ...")."""

    def __init__(self, reporter: Reporter, path: tuple[str, int], label: str,
                 raw: dict[str, object]) -> None:  # fmt: skip
        self.reporter = reporter
        self.path = path
        self.label = label
        self.raw = raw
        self.failed = False

    def fail(self, key: str | None, message: str) -> None:
        self.failed = True
        where = () if key is None else (key,)
        self.reporter.error((*self.path, *where), f"{self.label}: {message}")

    def string(self, key: str, *, required: bool) -> str | None:
        if key not in self.raw:
            if required:
                self.fail(None, f"missing required key {key!r}")
            return None
        value = self.raw[key]
        if not isinstance(value, str):
            self.fail(key, f"{key!r} must be a string, got {type_name(value)}")
            return None
        if not value.strip():
            self.fail(key, f"{key!r} must not be empty")
            return None
        return value

    def ident(self, key: str, *, required: bool) -> str | None:
        value = self.string(key, required=required)
        if value is not None and not ID.fullmatch(value):
            self.fail(key, f"{key!r} must be {ID_RULE}, got {value!r}")
            return None
        return value

    def known(self, key: str, known: Collection[str], what: str) -> str | None:
        """A required reference to a unit or person defined in this file."""
        value = self.string(key, required=True)
        if value is not None and value not in known:
            self.fail(key, f"unknown {what} {value!r}")
            return None
        return value

    def date(self, key: str, *, required: bool) -> datetime.date | None:
        if key not in self.raw:
            if required:
                self.fail(None, f"missing required key {key!r}")
            return None
        value = self.raw[key]
        if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
            return value
        if isinstance(value, str) and _DATE.fullmatch(value.strip()):
            try:
                return datetime.date.fromisoformat(value.strip())
            except ValueError as exc:
                self.fail(key, f"{key!r} is not a valid date: {value!r} ({exc})")
                return None
        got = repr(value) if isinstance(value, str) else type_name(value)
        self.fail(key, f"{key!r} must be a date (YYYY-MM-DD), got {got}")
        return None


def _open(reporter: Reporter, section: str, index: int, raw: object, kind: str,
          allowed: tuple[str, ...]) -> _Entry | None:  # fmt: skip
    path = (section, index)
    if not isinstance(raw, dict):
        reporter.error(path, f"{kind} #{index + 1} must be a table, got {type_name(raw)}")
        return None
    entry = _Entry(reporter, path, f"{kind} #{index + 1}", raw)
    for key in raw:
        if key not in allowed:
            entry.fail(str(key), f"unknown key {key!r}{hint(key, allowed)}")
    return entry


def read_roles(
    reporter: Reporter, entries: list[object], units: Collection[str], people: Collection[str]
) -> list[RoleRecord]:
    """Roles in file order; (unit, role, person) must be unique."""
    records: list[RoleRecord] = []
    first: dict[RoleRecord, Path] = {}
    for index, raw in enumerate(entries):
        entry = _open(reporter, "roles", index, raw, "role", ROLE_KEYS)
        if entry is None:
            continue
        unit = entry.known("unit", units, "unit")
        role = entry.ident("role", required=True)
        person = entry.known("person", people, "person")
        if entry.failed or unit is None or role is None or person is None:
            continue
        record = RoleRecord(unit, role, person)
        if record in first:
            where = reporter.line_of(first[record])
            entry.fail(None, f"duplicate role: {person!r} already holds {role!r} in "
                       f"{unit!r} (first at {where})")
            continue
        first[record] = entry.path
        records.append(record)
    return records


def read_relations(
    reporter: Reporter, entries: list[object], units: Collection[str]
) -> list[tuple[RelationRecord, Path]]:
    """Relations in file order, each with its entry's path (the importer's refusals name its
    line); the same relation may not be registered twice at once."""
    records: list[tuple[RelationRecord, _Entry]] = []
    for index, raw in enumerate(entries):
        entry = _open(reporter, "relations", index, raw, "relation", RELATION_KEYS)
        if entry is None:
            continue
        approver = entry.ident("approver", required=True)
        target = _object(entry, units)
        kind = entry.string("kind", required=True)
        if kind is not None and kind not in RELATION_KINDS:
            entry.fail("kind", f"'kind' must be 'responsible' or 'proxy', got {kind!r}")
        valid_from = entry.date("valid_from", required=True)
        valid_to = entry.date("valid_to", required=False)
        registered_by = entry.ident("registered_by", required=False)
        if valid_from is not None and valid_to is not None and valid_to < valid_from:
            entry.fail("valid_to", f"valid_to {valid_to} is before valid_from {valid_from}")
        if target is not None and target == ("person", approver):
            entry.fail("approver", f"{approver!r} cannot be their own approver")
        if kind == "proxy" and target is not None and target[0] == "unit":
            entry.fail("unit", "a proxy stands in for a person: give 'person', not 'unit'")
        if entry.failed or approver is None or target is None or kind is None:
            continue
        record = RelationRecord(approver, target[0], target[1], kind, need(valid_from),
                                valid_to, registered_by)  # fmt: skip
        for other, other_entry in records:
            if _same_relation(record, other) and _overlap(record, other):
                where = reporter.line_of(other_entry.path)
                entry.fail(None, f"{record.describe()} overlaps {other_entry.label} "
                           f"({where}): the same relation is already registered then")
                break
        else:
            records.append((record, entry))
    return [(record, entry.path) for record, entry in records]


def _object(entry: _Entry, units: Collection[str]) -> tuple[Literal["person", "unit"], str] | None:
    """The approval object: exactly one of ``person`` / ``unit``."""
    if "person" in entry.raw and "unit" in entry.raw:
        entry.fail("unit", "give either 'person' or 'unit' as the approval object, not both")
        return None
    if "unit" in entry.raw:
        unit = entry.known("unit", units, "unit")
        return ("unit", unit) if unit is not None else None
    if "person" not in entry.raw:
        entry.fail(None, "missing the approval object: give 'person' or 'unit'")
        return None
    person = entry.ident("person", required=True)
    return ("person", person) if person is not None else None


def _same_relation(a: RelationRecord, b: RelationRecord) -> bool:
    return (a.approver, a.object_type, a.object_id, a.kind) == (
        b.approver, b.object_type, b.object_id, b.kind)  # fmt: skip


def _overlap(a: RelationRecord, b: RelationRecord) -> bool:
    """Inclusive periods; an open end never ends."""
    return (b.valid_to is None or a.valid_from <= b.valid_to) and (
        a.valid_to is None or b.valid_from <= a.valid_to
    )

