"""Validated directory entries, kept apart so consumers need not import the validator."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Unit:
    id: str
    name: str
    name_ja: str
    parent: str | None


@dataclass(frozen=True)
class Position:
    id: str
    name: str
    name_ja: str
    rank: int  # higher rank = more authority


@dataclass(frozen=True)
class PersonRecord:
    id: str
    name: str
    name_ja: str
    emails: tuple[str, ...]  # lower-cased
    locale: str  # "en" or "ja"
    unit: str
    position: str
    active: bool
    # The registration and approval qualifications (SPEC 7); None: by the position's rank.
    may_register: bool | None = None
    may_approve: bool | None = None


@dataclass(frozen=True)
class RoleRecord:
    """A post held in a unit: ``person`` is ``role`` (head, accounting_staff, ...) of ``unit``."""

    unit: str
    role: str
    person: str


@dataclass(frozen=True)
class RelationRecord:
    """A registered approval relation: ``approver`` approves for the object.

    ``kind`` "responsible": the approver is responsible for the person or unit;
    ``kind`` "proxy": the approver stands in for the object person.
    """

    approver: str
    object_type: Literal["person", "unit"]
    object_id: str
    kind: str  # "responsible" or "proxy"
    valid_from: datetime.date
    valid_to: datetime.date | None  # None: open-ended; otherwise inclusive
    registered_by: str | None

    def describe(self) -> str:
        """One line for diffs and messages: ``a->person b proxy 2026-01-01..2026-12-31``."""
        until = self.valid_to.isoformat() if self.valid_to else ""
        return (
            f"{self.approver}->{self.object_type} {self.object_id} {self.kind} "
            f"{self.valid_from.isoformat()}..{until}"
        )


@dataclass(frozen=True)
class DirectoryData:
    units: tuple[Unit, ...]
    positions: tuple[Position, ...]
    people: tuple[PersonRecord, ...]
    roles: tuple[RoleRecord, ...] = ()
    relations: tuple[RelationRecord, ...] = ()
    # Where each relation stands in the file (its line, or None), for `file:line:` refusals
    # of the relation rules the importer checks against the store; `source` names the file.
    relation_lines: tuple[int | None, ...] = field(default=(), compare=False)
    source: str = field(default="", compare=False)
