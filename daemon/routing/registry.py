"""Template versions in the store: a running case keeps the version it started with."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.clock import Clock
from daemon.routing.templates import Template, TemplateSet, build_template
from daemon.store.db import Store
from daemon.store.models import WorkflowVersion


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

    def current(self, case_type: str) -> tuple[int, Template]:
        t = self.templates.for_case_type(case_type)
        return self._current[t.name], t

    def of_version(self, s: Session, version_id: int | None, case_type: str) -> Template:
        """The template a case runs on (its own version, even after the file changed)."""
        if version_id is None:
            return self.current(case_type)[1]
        if version_id not in self._by_version:
            row = s.get(WorkflowVersion, version_id)
            if row is None:
                return self.current(case_type)[1]
            self._by_version[version_id] = build_template(
                row.body, f"{row.source} (version {row.version})", self.fields_of)
        return self._by_version[version_id]

    def version_label(self, s: Session, version_id: int | None) -> str:
        row = s.get(WorkflowVersion, version_id) if version_id else None
        return f"{row.name} v{row.version}" if row else "-"
