"""Template versions in the store: a running case keeps the version it started with."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.clock import Clock
from daemon.routing.templates import (
    Template,
    TemplateError,
    TemplateSet,
    build_template,
    claimed_case_types,
    held_body,
)
from daemon.rulefiles import BrokenRule
from daemon.store.db import Store
from daemon.store.models import WorkflowVersion


class StoredVersionError(Exception):
    """A case's own workflow version no longer builds against today's case types (a field
    it names was removed or renamed): the case cannot go on until the administrator
    restores what it needs. Carries the version so callers can find every case on it."""

    def __init__(self, version_id: int, label: str, errors: list[str]) -> None:
        super().__init__(f"workflow {label} no longer builds against today's case types: "
                         + "; ".join(errors))
        self.version_id = version_id
        self.label = label
        self.errors = errors


class TemplateRegistry:
    def __init__(self, store: Store, templates: TemplateSet, fields_of: dict[str, set[str]],
                 clock: Clock) -> None:
        self.store = store
        self.templates = templates
        self.fields_of = fields_of
        self.clock = clock
        self._by_version: dict[int, Template] = {}
        self._current: dict[str, int] = {}

    def register(self) -> list[str]:
        """Record each template's content as a version; returns lines for new versions."""
        lines = []
        everything = [*{t.digest: t for t in self.templates.by_case_type.values()}.values(),
                      self.templates.default]
        with self.store.transaction() as s:
            for t in everything:
                row = s.scalar(select(WorkflowVersion).where(
                    WorkflowVersion.name == t.name, WorkflowVersion.digest == t.digest))
                if row is None:
                    latest = s.scalar(select(func.max(WorkflowVersion.version))
                                      .where(WorkflowVersion.name == t.name)) or 0
                    row = WorkflowVersion(name=t.name, version=latest + 1, digest=t.digest,
                                          source=t.source, body=t.body,
                                          loaded_at=self.clock.now())
                    s.add(row)
                    s.flush()
                    lines.append(f"workflow {t.name} version {row.version} from {t.source}")
                self._current[t.name] = row.id
                self._by_version[row.id] = t
        return lines

    def restore(self, broken: list[BrokenRule]) -> None:
        """Put the last good stored version of each refused file back in force; a file that
        never had one holds the case types it is for (all those without a template, when
        it cannot even say which) for the administrator. Sets each file's `in_force`."""
        with self.store.transaction() as s:
            for b in broken:
                last = self._last_good(s, b.path)
                if last is not None:
                    row, t = last
                    for ct in t.case_types:
                        self.templates.by_case_type.setdefault(ct, t)
                    b.in_force = (f"its last good version stays in force: workflow {row.name} "
                                  f"v{row.version} of {row.loaded_at:%Y-%m-%d %H:%M}")
                    continue
                claimed = claimed_case_types(Path(b.path)) or list(self.fields_of)
                held = [ct for ct in claimed
                        if ct in self.fields_of and ct not in self.templates.by_case_type]
                if not held:
                    b.in_force = "nothing, and no case type depends on it"
                    continue
                t = build_template(held_body(b.path, held), f"<held: {b.path}>"[:500],
                                   self.fields_of)
                for ct in held:
                    self.templates.by_case_type[ct] = t
                b.in_force = (f"no good version is stored: cases of {', '.join(held)} go to "
                              "the administrator until it is fixed")

    def _last_good(self, s: Session, path: str) -> tuple[WorkflowVersion, Template] | None:
        for row in s.scalars(select(WorkflowVersion).where(WorkflowVersion.source == path)
                             .order_by(WorkflowVersion.id.desc())):
            try:
                return row, build_template(row.body, path, self.fields_of)
            except TemplateError:
                continue  # valid then, not against today's case types: an older one may be
        return None

    def current(self, case_type: str) -> tuple[int, Template]:
        t = self.templates.for_case_type(case_type)
        return self._current[t.name], t

    def of_version(self, s: Session, version_id: int | None, case_type: str) -> Template:
        """The template a case runs on (its own version, even after the file changed), or
        StoredVersionError (daemon.cases.versions suspends the cases on it)."""
        if version_id is None:
            return self.current(case_type)[1]
        if version_id not in self._by_version:
            row = s.get(WorkflowVersion, version_id)
            if row is None:
                return self.current(case_type)[1]
            try:
                self._by_version[version_id] = build_template(
                    row.body, f"{row.source} (version {row.version})", self.fields_of)
            except TemplateError as exc:
                raise StoredVersionError(version_id, f"{row.name} v{row.version}",
                                         [e[:300] for e in exc.errors[:5]]) from None
        return self._by_version[version_id]

    def version_label(self, s: Session, version_id: int | None) -> str:
        row = s.get(WorkflowVersion, version_id) if version_id else None
        return f"{row.name} v{row.version}" if row else "-"
