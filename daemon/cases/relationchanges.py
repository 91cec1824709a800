"""Waiting cases when an approval relation changes, ends or begins (SPEC 7, 10).

A relation registered by a department changes outside any directory import (by mail, by
`ringi relation` in another process, or simply because its last day has passed), so no
import re-resolves the cases it routes. This timer duty does: for every object (person or
unit) whose relations changed since the last pass (`relation_history`) or whose responsible
relation ended yesterday or begins today (the company's day), it re-resolves the waiting
cases of requesters it covers, exactly as after an organisation change
(daemon.cases.recheck / reroute): an ask whose relation now names someone else moves to
them, one that nobody holds any more is held, never approved by absence, and a held case
resumes when a relation gives its step an approver again.

It is idempotent (a second pass finds every ask unchanged), so its memory is only the
process's: after a restart it looks back `LOOK_BACK_DAYS` and over the whole history once.
Each case is locked before it is checked, so two daemons never act on one ask twice.
"""

from __future__ import annotations

import datetime
import logging

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from daemon.cases.recheck import WAITING, check_case
from daemon.cases.reroute import apply
from daemon.cases.workflow import Workflow
from daemon.directory.lookup import cached_directory
from daemon.store.db import Store
from daemon.store.directory_models import ApprovalRelation
from daemon.store.models import Case, Person
from daemon.store.relation_models import RelationHistory
from daemon.store.reorg_models import in_progress

log = logging.getLogger(__name__)

LOOK_BACK_DAYS = 31  # after a start: relations that ended or began while ringi was down
Object = tuple[str, str]  # ("unit" | "person", id)


class RelationChanges:
    def __init__(self, store: Store, workflow: Workflow) -> None:
        self.store = store
        self.wf = workflow
        self.seen = 0  # the last relation_history id acted on
        self.day: datetime.date | None = None  # the last company day looked at

    def due(self) -> int:
        """Re-resolve the waiting cases of every object whose relations moved."""
        today = self.wf.today()
        since = self.day or today - datetime.timedelta(days=LOOK_BACK_DAYS)
        with self.store.transaction() as s:
            # An idle pass is this one indexed read: nothing changed, the same day.
            changed = s.execute(select(RelationHistory.id, RelationHistory.object_type,
                                       RelationHistory.object_id)
                                .where(RelationHistory.id > self.seen)
                                .order_by(RelationHistory.id)).all()
            if not changed and self.day == today:
                return 0
            if in_progress(s) is not None:
                return 0  # a reorganisation re-resolves every case itself when it commits
            objects: set[Object] = {(t, o) for _, t, o in changed}
            if self.day != today:
                objects |= self._turned(s, since, today)
        done = 0
        for obj in sorted(objects):
            with self.store.transaction() as s:
                done += self.recheck(s, obj)
        if changed:
            self.seen = changed[-1][0]
        self.day = today
        return done

    @staticmethod
    def _turned(s: Session, since: datetime.date, today: datetime.date) -> set[Object]:
        """Objects whose responsible relation ended (last day before today) or began since
        `since`: the day turning changed who routes for them."""
        rows = s.execute(select(ApprovalRelation.object_type, ApprovalRelation.object_id)
                         .where(ApprovalRelation.active.is_(True),
                                ApprovalRelation.kind == "responsible",
                                or_(and_(ApprovalRelation.valid_to >= since
                                         - datetime.timedelta(days=1),
                                         ApprovalRelation.valid_to < today),
                                    and_(ApprovalRelation.valid_from > since,
                                         ApprovalRelation.valid_from <= today)))).all()
        return {(t, o) for t, o in rows}

    def recheck(self, s: Session, obj: Object) -> int:
        """Act on the waiting cases of the requesters `obj` covers; returns how many asks
        moved, were held or resumed."""
        kind, oid = obj
        requesters = [oid] if kind == "person" else \
            list(s.scalars(select(Person.id).where(Person.unit_id == oid)))
        ids = list(s.scalars(select(Case.id).where(Case.state.in_(WAITING),
                                                   Case.requester_id.in_(requesters))
                             .order_by(Case.id)))
        acted = 0
        why = f"the approval relations of {kind} {oid} changed"
        with cached_directory(s):
            for case_id in ids:
                case = s.scalar(select(Case).where(Case.id == case_id).with_for_update())
                if case is None or case.state not in WAITING:
                    continue
                checks = [c for c in check_case(self.wf, s, case)
                          if c.outcome not in ("unchanged", "held")]
                if checks:
                    apply(self.wf, s, checks, why, tell_admin=True)
                    acted += len(checks)
        if acted:
            log.info("relations of %s %s: %d waiting ask(s) re-resolved", kind, oid, acted)
        return acted
