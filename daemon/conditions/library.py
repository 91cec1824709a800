"""Condition sets in the database, with versions (SPEC 6: "under rules/ and in the database").

Files under `rules/conditions/` are imported as versions on start; setters also change sets
by email ("new", "replace", "for case N only"). A change never edits a row: it adds a
version and retires the previous one, so history shows what was in force when. Every
instance rebuilds its in-memory book when the table changes, so several daemons sharing one
PostgreSQL examine against the same conditions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.clock import Clock
from daemon.conditions.sets import (
    ConditionBook,
    ConditionSet,
    ConditionSetError,
    build_set,
    read_condition_files,
)
from daemon.rulefiles import BrokenRule, broken_files
from daemon.store.condition_models import ConditionSetVersion

log = logging.getLogger(__name__)

Audit = Callable[[Session, str, str | None, str, dict[str, Any]], None]


def digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Saved:
    name: str
    version: int
    case_number: str
    replaced: bool


class ConditionLibrary:
    def __init__(self, clock: Clock, fields_of: dict[str, set[str]],
                 audit: Audit | None = None,
                 lock: Callable[[Session], object] | None = None) -> None:
        self.clock = clock
        self.fields_of = fields_of
        self.audit = audit
        self.lock = lock  # serialises writers across daemons (the audit head)
        self._lock = threading.Lock()
        self._generation: tuple[int, int, int] | None = None
        self._book = ConditionBook()

    # --- reading ---------------------------------------------------------------------------

    def book(self, s: Session) -> ConditionBook:
        """The sets in force, rebuilt only when some version was added or retired."""
        row = s.execute(select(func.max(ConditionSetVersion.id), func.count(),
                               func.sum(ConditionSetVersion.id))
                        .where(ConditionSetVersion.active)).one()
        generation = (int(row[0] or 0), int(row[1]), int(row[2] or 0))
        with self._lock:
            if generation != self._generation:
                rows = s.scalars(select(ConditionSetVersion).where(ConditionSetVersion.active)
                                 .order_by(ConditionSetVersion.name,
                                           ConditionSetVersion.case_number)).all()
                book = ConditionBook()
                for r in rows:
                    try:
                        book.add(self._build(r))
                    except ConditionSetError as exc:  # e.g. a field its case type lost
                        # Not in force: its setter decides in person (never approval by a
                        # set that cannot be read). Logged once per change of the table.
                        log.error("condition set %s v%s (%s) is not in force: %s", r.name,
                                  r.version, r.source, "; ".join(exc.errors))
                self._book, self._generation = book, generation
            return self._book

    def stored_apart(self, s: Session) -> list[tuple[str, ConditionSet | list[str]]]:
        """The sets in force that no file holds (edited by mail or command), each built,
        or its problems (e.g. a field its case type no longer has): for `rules check`."""
        out: list[tuple[str, ConditionSet | list[str]]] = []
        for r in s.scalars(select(ConditionSetVersion).where(
                ConditionSetVersion.active, ConditionSetVersion.origin != "file")
                .order_by(ConditionSetVersion.name, ConditionSetVersion.case_number)):
            label = f"{r.name} (v{r.version}, {r.origin}" + (
                f", case {r.case_number})" if r.case_number else ")")
            try:
                out.append((label, self._build(r)))
            except ConditionSetError as exc:
                out.append((label, exc.errors))
        return out

    def _build(self, row: ConditionSetVersion) -> ConditionSet:
        return build_set(row.body, f"{row.source} (v{row.version})", self.fields_of,
                         row.case_number, row.version)

    def kept(self, row: ConditionSetVersion) -> str:
        """What a refused file leaves in force: its last good version, if that still reads."""
        try:
            self._build(row)
        except ConditionSetError:
            return (f"its last good version ({row.name} v{row.version}) no longer fits "
                    "today's case types either: its setter decides those cases in person")
        return (f"its last good version stays in force: {row.name} v{row.version} of "
                f"{row.created_at:%Y-%m-%d %H:%M}")

    def active(self, s: Session, name: str, case_number: str = "") -> ConditionSetVersion | None:
        return s.scalar(select(ConditionSetVersion).where(
            ConditionSetVersion.name == name, ConditionSetVersion.case_number == case_number,
            ConditionSetVersion.active))

    def of_setter(self, s: Session, setter: str) -> list[ConditionSetVersion]:
        return list(s.scalars(select(ConditionSetVersion).where(
            ConditionSetVersion.setter_id == setter, ConditionSetVersion.active)
            .order_by(ConditionSetVersion.name, ConditionSetVersion.case_number)))

    # --- writing ---------------------------------------------------------------------------

    def save(self, s: Session, body: dict[str, Any], *, origin: str, source: str,
             actor: str | None, case_number: str = "") -> Saved:
        """Validate and store a new version; raises ConditionSetError with readable lines."""
        cs = build_set(body, source, self.fields_of, case_number)
        if self.lock is not None:
            self.lock(s)
        current = self.active(s, cs.name, case_number)
        last = s.scalar(select(func.max(ConditionSetVersion.version)).where(
            ConditionSetVersion.name == cs.name,
            ConditionSetVersion.case_number == case_number)) or 0
        if current is not None:
            current.active = False
        s.add(ConditionSetVersion(
            name=cs.name, case_number=case_number, version=last + 1, setter_id=cs.setter,
            body=body, digest=digest(body), origin=origin, source=source, active=True,
            created_at=self.clock.now(), created_by=actor))
        s.flush()
        if self.audit is not None:
            self.audit(s, "condition set saved", actor, f"conditions/{cs.name}", {
                "version": last + 1, "case_number": case_number or None, "origin": origin,
                "source": source, "digest": digest(body),
                "previous": current.version if current else None})
        return Saved(cs.name, last + 1, case_number, current is not None)

    def retire(self, s: Session, name: str, *, actor: str | None, source: str,
               case_number: str = "") -> bool:
        if self.lock is not None:
            self.lock(s)
        current = self.active(s, name, case_number)
        if current is None:
            return False
        current.active = False
        if self.audit is not None:
            self.audit(s, "condition set retired", actor, f"conditions/{name}", {
                "version": current.version, "case_number": case_number or None,
                "source": source})
        return True

    def sync_files(self, s: Session, directory: Path) -> tuple[list[str], list[BrokenRule]]:
        """Import changed files as new versions; a set edited by mail since keeps its mail
        version until its file changes again. Returns one line per change, and the files
        refused: a refused file's last good version stays in force (it is not retired)."""
        good, errors = read_condition_files(directory, self.fields_of)
        if self.lock is not None:
            self.lock(s)  # two daemons starting together import each change once
        changes = []
        for where, (body, cs) in good.items():
            seen = s.scalar(select(ConditionSetVersion.id).where(
                ConditionSetVersion.name == cs.name, ConditionSetVersion.case_number == "",
                ConditionSetVersion.origin == "file",
                ConditionSetVersion.digest == digest(body)).limit(1))
            if seen is not None:
                continue  # this file content was imported before
            saved = self.save(s, body, origin="file", source=where, actor=None)
            changes.append(f"condition set {cs.name}: version {saved.version} from {where}")
        names = {cs.name for _, cs in good.values()}
        broken = broken_files("condition set", errors)
        for row in s.scalars(select(ConditionSetVersion).where(
                ConditionSetVersion.active, ConditionSetVersion.origin == "file",
                ConditionSetVersion.case_number == "")).all():
            kept = next((b for b in broken if b.path == row.source), None)
            if kept is not None and row.name not in names:
                kept.in_force = self.kept(row)
            elif row.name not in names:
                self.retire(s, row.name, actor=None, source="file removed")
                changes.append(f"condition set {row.name}: retired (its file is gone)")
        for b in broken:
            b.in_force = b.in_force or ("no good version of this file is stored: its setter "
                                        "decides the cases it would cover in person")
        return changes, broken
