"""The reorganisation procedure: plan, verify, begin, commit, roll back (SPEC 10).

A plan stores a directory file whole. Verifying applies it inside a transaction that is
rolled back and re-resolves every waiting case against it (daemon.cases.reroute). Begin
freezes routing: new requests are registered and acknowledged but not routed, replies are
kept (daemon.cases.replies), reminders wait, and the directory is backed up. Commit is one
transaction that switches in bulk: the new directory, the moving asks withdrawn with their
tokens, one work item per moved case (its new asks and mails follow: reorgrunner), kept
replies queued again, registered requests routed; a crash leaves the old state or the new,
never a mix. Rollback restores the directory and every case the commit changed, reviving
the tokens it withdrew.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.audit.trail import AuditTrail
from daemon.cases.recheck import Check, check_all
from daemon.cases.reorgrestore import restore_cases, route_registered
from daemon.cases.reorgrunner import rerouting, withdraw_in_bulk
from daemon.cases.workflow import Workflow
from daemon.directory.export import snapshot
from daemon.directory.filerules import FileRules
from daemon.directory.importer import DirectoryDiff, apply_directory, check_relations
from daemon.directory.loader import format_for, parse_directory
from daemon.notify.alerts import AdminAlerts
from daemon.store.db import Store
from daemon.store.models import DirectoryImport
from daemon.store.reorg_models import (
    Reorganisation,
    ReorgKeptReply,
    ReorgState,
    in_progress,
)
from daemon.workqueue.queue import Queues, WorkQueue

log = logging.getLogger(__name__)

OPEN = (ReorgState.PLANNED, ReorgState.IN_PROGRESS)
class ReorgError(Exception):
    def __init__(self, message: str, report: Report | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class Report:
    """What a plan does to every waiting case (and to the directory)."""

    reorg_id: int
    checks: list[Check]
    diff: DirectoryDiff = field(default_factory=DirectoryDiff)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(c.outcome for c in self.checks))

    @property
    def failing(self) -> list[Check]:
        return [c for c in self.checks if c.outcome == "fails"]

    def lines(self, title: str = "") -> list[str]:
        out = [f"{title or f'reorganisation {self.reorg_id}'}: {len(self.checks)} waiting "
               "ask(s)" + "".join(f", {k} {v}" for k, v in sorted(self.counts.items()))]
        width = max((len(c.number) for c in self.checks), default=6)
        for c in self.checks:
            old = ",".join(c.old) or "-"
            if c.outcome == "unchanged":
                text = f"unchanged ({old})"
            elif c.outcome in ("moves", "resumes"):
                text = f"{c.outcome} to {','.join(c.new)}" + (f" from {old}" if c.old else "") \
                    + f" ({c.why})"
            else:
                text = f"{c.outcome}: {c.reason} ({c.why})"
            out.append(f"  {c.number:<{width}}  {c.step:<24}  {text}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"reorganisation": self.reorg_id, "counts": self.counts,
                "cases": [c.as_dict() for c in self.checks], "directory": self.diff.as_dict()}


class Reorganisations:
    def __init__(self, store: Store, wf: Workflow, audit: AuditTrail, queue: WorkQueue,
                 on_failure: str = "hold") -> None:
        self.store = store
        self.wf = wf
        self.audit = audit
        self.queue = queue
        self.on_failure = on_failure  # at an effective time: "hold" failing cases or "rollback"
        self.on_commit: Callable[[], None] | None = None  # wakes the reroute runner

    # --- plan and verify ---------------------------------------------------------------------

    def plan(self, path: Path, effective_at: datetime | None, by: str) -> Report:
        fmt = format_for(path)
        raw = path.read_bytes()
        data = parse_directory(raw, fmt, str(path))  # refuses a bad file before anything
        with self.store.transaction() as s:  # is stored, and so do the relation rules
            self.audit.lock(s)
            check_relations(s, data, FileRules.from_config(self.wf.cfg), self.wf.clock.now())
            if (open_ := self._open(s)) is not None:
                raise ReorgError(f"reorganisation {open_.id} is {open_.state}; commit, roll back "
                                 f"or cancel it first (ringi reorg cancel {open_.id})")
            reorg = Reorganisation(
                state=ReorgState.PLANNED, source=path.name, format=fmt, body=raw,
                sha256=hashlib.sha256(raw).hexdigest(), effective_at=effective_at,
                created_at=self.wf.clock.now(), created_by=by, note="")
            s.add(reorg)
            s.flush()
            self.audit.append(s, "reorganisation planned", by, f"reorganisation {reorg.id}",
                              {"file": path.name, "sha256": reorg.sha256,
                               "effective_at": effective_at.isoformat() if effective_at
                               else None})
            reorg_id = reorg.id
        return self.verify(reorg_id)

    def verify(self, reorg_id: int | None = None) -> Report:
        """Apply the plan in a transaction that is rolled back: nothing changes."""
        with self.store.sessions() as s:
            reorg = self._get(s, reorg_id, OPEN)
            report = self._check(s, reorg)
            s.rollback()
        with self.store.transaction() as s:
            row = s.get(Reorganisation, report.reorg_id)
            if row is not None:
                row.report = {"verified_at": self.wf.clock.now().isoformat(),
                              "counts": report.counts}
        return report

    def _check(self, s: Session, reorg: Reorganisation) -> Report:
        data = parse_directory(reorg.body, reorg.format, reorg.source)
        diff = apply_directory(s, data, self.wf.clock.now())
        s.flush()
        return Report(reorg.id, check_all(self.wf, s), diff)

    # --- begin, commit, rollback ------------------------------------------------------------

    def begin(self, by: str, reorg_id: int | None = None) -> Reorganisation:
        with self.store.transaction() as s:
            self.audit.lock(s)
            reorg = self._get(s, reorg_id, (ReorgState.PLANNED,))
            if (left := rerouting(s)):
                raise ReorgError(f"{left} case(s) of the last reorganisation are still being "
                                 "rerouted; begin once `ringi reorg status` shows none")
            reorg.state = ReorgState.IN_PROGRESS
            reorg.begun_at = self.wf.clock.now()
            reorg.backup = snapshot(s)
            self.audit.append(s, "reorganisation begun", by, f"reorganisation {reorg.id}",
                              {"file": reorg.source})
            return reorg

    def commit(self, by: str, hold_failing: bool = False) -> Report:
        """One transaction; refused (nothing changes) while any case would fail, unless
        `hold_failing`, which holds exactly those cases."""
        with self.store.transaction() as s:
            self.audit.lock(s)
            reorg = self._get(s, None, (ReorgState.IN_PROGRESS,))
            report = self._check(s, reorg)
            if report.failing and not hold_failing:
                raise ReorgError(f"{len(report.failing)} case(s) would fail; fix the plan, or "
                                 "commit with --hold-failing to hold exactly those", report)
            why = f"reorganisation {reorg.id} ({reorg.source})"
            acted: dict[int, list[Check]] = {}  # case id -> its checks that act, in order
            for c in report.checks:
                if c.outcome in ("moves", "fails", "resumes"):
                    acted.setdefault(c.case_id, []).append(c)
            # The switch, in bulk; each case's new asks and mails follow (reorgrunner).
            withdraw_in_bulk(s, reorg.id, acted, self.wf.clock.now(),
                             self.queue.cfg.max_attempts)
            held = report.failing
            imp = DirectoryImport(at=self.wf.clock.now(), source=f"{why}", sha256=reorg.sha256,
                                  diff=report.diff.as_dict())
            s.add(imp)
            s.flush()
            self._release(s, reorg)
            reorg.state, reorg.ended_at = ReorgState.COMMITTED, self.wf.clock.now()
            reorg.report = {"counts": report.counts, "import_id": imp.id,
                            "held": [c.number for c in held]}
            self.audit.append(s, "reorganisation committed", by, f"reorganisation {reorg.id}",
                              {"counts": report.counts, "held": [c.number for c in held]})
            if held:
                self._tell_admin(s, reorg, "committed", report, held)
        if self.on_commit is not None:
            self.on_commit()
        return report

    def rollback(self, by: str) -> list[str]:
        """Back to the state before begin: the directory, and every case the commit changed
        (a case decided since is left as it is and named)."""
        with self.store.transaction() as s:
            self.audit.lock(s)
            reorg = s.scalar(select(Reorganisation).where(Reorganisation.state.in_(
                (ReorgState.IN_PROGRESS, ReorgState.COMMITTED)))
                .order_by(Reorganisation.id.desc()).limit(1).with_for_update())
            if reorg is None:
                raise ReorgError("no reorganisation in progress or committed to roll back")
            lines: list[str] = []
            if reorg.state == ReorgState.COMMITTED:
                last = s.scalar(select(DirectoryImport.id).order_by(DirectoryImport.id.desc())
                                .limit(1))
                if last != (reorg.report or {}).get("import_id"):
                    raise ReorgError(f"the directory changed after reorganisation {reorg.id} "
                                     "was committed; import the directory you want instead")
                lines = restore_cases(self.wf, s, reorg)  # kept replies went at the commit
            else:
                self._release(s, reorg)
            reorg.state, reorg.ended_at = ReorgState.ROLLED_BACK, self.wf.clock.now()
            self.audit.append(s, "reorganisation rolled back", by, f"reorganisation {reorg.id}",
                              {"left": lines})
            return lines

    def cancel(self, by: str, reorg_id: int | None = None) -> Reorganisation:
        with self.store.transaction() as s:
            self.audit.lock(s)
            reorg = self._get(s, reorg_id, (ReorgState.PLANNED,))
            reorg.state, reorg.ended_at = ReorgState.CANCELLED, self.wf.clock.now()
            self.audit.append(s, "reorganisation cancelled", by, f"reorganisation {reorg.id}",
                              {})
            return reorg

    def _release(self, s: Session, reorg: Reorganisation) -> None:
        """The change is over: kept replies are processed again, registered requests routed."""
        for kept in s.scalars(select(ReorgKeptReply).where(ReorgKeptReply.reorg_id == reorg.id)):
            self.queue.enqueue(s, Queues.INBOUND, kept.inbound_id)
        route_registered(self.wf, s, reorg.id)

    # --- the effective time -----------------------------------------------------------------

    def due(self) -> int:
        """A plan whose effective time has come: begun, committed if verification is clean,
        otherwise held or rolled back as configured; the administrator gets the report."""
        with self.store.transaction() as s:
            reorg = s.scalar(select(Reorganisation).where(
                Reorganisation.state == ReorgState.PLANNED,
                Reorganisation.effective_at <= self.wf.clock.now()).limit(1))
            if reorg is None or in_progress(s) is not None or rerouting(s):
                return 0
            reorg_id = reorg.id
        self.begin("ringi (effective time)", reorg_id)
        try:
            self.commit("ringi (effective time)", hold_failing=self.on_failure == "hold")
            return 1
        except ReorgError as exc:
            self.rollback("ringi (effective time)")
            with self.store.transaction() as s:
                reorg2 = s.get(Reorganisation, reorg_id)
                if reorg2 is not None:
                    self._tell_admin(s, reorg2, "rolled back", exc.report, [])
            return 1

    def _tell_admin(self, s: Session, reorg: Reorganisation, what: str, report: Report | None,
                    held: list[Check]) -> None:
        lines = "\n".join(report.lines()) if report else ""
        AdminAlerts(self.wf.notifier, self.wf.clock, self.wf.cfg.workflow.admin).tell(
            s, f"reorg:{reorg.id}:{what}", f"Reorganisation {reorg.id} {what}"
            + (f": {len(held)} case(s) held" if held else ""),
            f"Reorganisation {reorg.id} ({reorg.source}) was {what}.\n\n{lines}\n\n"
            "`ringi reorg status` shows it; held cases resume when a later directory import "
            "gives their step an approver.")

    # --- reading ----------------------------------------------------------------------------

    def _open(self, s: Session) -> Reorganisation | None:
        return s.scalar(select(Reorganisation).where(Reorganisation.state.in_(OPEN))
                        .order_by(Reorganisation.id.desc()).limit(1))

    def _get(self, s: Session, reorg_id: int | None, states: tuple[str, ...]) -> Reorganisation:
        if reorg_id is None:
            reorg = s.scalar(select(Reorganisation).where(Reorganisation.state.in_(states))
                             .order_by(Reorganisation.id.desc()).limit(1).with_for_update())
        else:
            reorg = s.get(Reorganisation, reorg_id, with_for_update=True)
        if reorg is None or reorg.state not in states:
            what = f"reorganisation {reorg_id}" if reorg_id else "a reorganisation"
            now = f" (it is {reorg.state})" if reorg is not None else ""
            raise ReorgError(f"{what} that is {' or '.join(states)} was not found{now}")
        return reorg

    def status(self) -> dict[str, Any]:
        with self.store.transaction() as s:
            rows = s.scalars(select(Reorganisation).order_by(Reorganisation.id.desc())
                             .limit(5)).all()
            kept = {r.id: len(s.scalars(select(ReorgKeptReply.id).where(
                ReorgKeptReply.reorg_id == r.id)).all()) for r in rows}
            return {"reorganisations": [{
                "id": r.id, "state": r.state, "file": r.source,
                "effective_at": r.effective_at.isoformat() if r.effective_at else None,
                "begun_at": r.begun_at.isoformat() if r.begun_at else None,
                "ended_at": r.ended_at.isoformat() if r.ended_at else None,
                "report": r.report or {}, "kept_replies": kept[r.id],
                "rerouting": rerouting(s, r.id)} for r in rows]}
