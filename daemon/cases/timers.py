"""Waiting cases over time: people who left, reminders, escalation (SPEC 5).

Run periodically from one thread (or from tests after moving the clock). Each action is
claimed with a conditional UPDATE, so two daemons sharing a database never remind twice.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from daemon.audit.casechain import anchor_all
from daemon.audit.trail import AuditTrail
from daemon.cases import duetimes
from daemon.cases.digests import DailyDigests
from daemon.cases.escalation import NEXT_RANK, PROXY, ask_beside, proxies_today
from daemon.cases.recheck import check_case
from daemon.cases.recovery import claim_waiting, resume_after_wait
from daemon.cases.relationchanges import RelationChanges
from daemon.cases.relationwarnings import ExpiryWarnings
from daemon.cases.reorganisation import Reorganisations
from daemon.cases.reroute import apply
from daemon.cases.states import CaseState, StepState
from daemon.cases.workflow import Workflow
from daemon.directory.lookup import Member, member
from daemon.routing.resolvers import RouteContext, rank_above
from daemon.routing.templates import Step
from daemon.store import instance_models as instances
from daemon.store.db import Store, rowcount
from daemon.store.models import Case, CaseStep
from daemon.store.reorg_models import in_progress

log = logging.getLogger(__name__)
ACTIVE = (CaseState.IN_REVIEW, CaseState.ON_HOLD)  # cases whose waiting steps the timers watch


class Timers:
    def __init__(self, store: Store, workflow: Workflow, audit: AuditTrail | None = None,
                 reorganisations: Reorganisations | None = None) -> None:
        self.store = store
        self.wf = workflow
        self.audit = audit
        self.reorganisations = reorganisations  # a plan's effective time is a duty here
        self.expiry = ExpiryWarnings(store, workflow.notifier, audit, workflow.cfg,
                                     workflow.clock) if audit is not None else None
        self.relation_changes = RelationChanges(store, workflow)
        self.digests = DailyDigests(store, workflow)  # each approver's digest, once a day
        self.cfg = workflow.cfg.workflow
        self.batch = duetimes.BATCH
        self._prepared = False
        self.instance_id: int | None = None  # this daemon's heartbeat row, once started
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="timers", daemon=True)

    def start(self) -> None:
        self.prepare()
        with self.store.transaction() as s:  # `ringi status` sees this daemon from now on
            self.instance_id = instances.register(s, self.wf.cfg.instance.name,
                                                  self.wf.clock.now())
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(10)
        self._beat(stopped=True)

    def _beat(self, stopped: bool = False) -> None:
        if self.instance_id is None:
            return
        try:
            with self.store.transaction() as s:
                instances.beat(s, self.instance_id, self.wf.clock.now(), stopped)
        except Exception:  # a heartbeat is news, not work: never fail a stop for it
            log.exception("timers: heartbeat not written")

    def _loop(self) -> None:
        while not self.stopping.wait(self.cfg.timer_seconds):
            try:
                self.run_once()
            except Exception:
                log.exception("timers: pass failed; retrying next time")

    def run_once(self) -> int:
        """One pass over what is due; returns how many actions were taken."""
        done = 0
        # Each duty on its own: one that fails must not stop reminders or the others.
        duties = [self._revision_waits, self._budget_periods]
        if self.reorganisations is not None:
            duties.insert(0, self.reorganisations.due)
        if self.wf.publisher is not None:
            duties.append(self.wf.publisher.purge_expired)
        if self.expiry is not None:  # relations ending soon: their registrars are told
            duties.append(self.expiry.due)
        duties.append(self.relation_changes.due)  # cases routed by relations that moved
        duties.append(self.digests.due)
        for duty in duties:
            try:
                done += duty()
            except Exception:
                log.exception("timers: %s failed; the other duties go on", duty.__name__)
        try:  # bookkeeping, not an action on a case: not counted
            self.anchor_histories()
        except Exception:
            log.exception("timers: case histories could not be anchored; next pass retries")
        with self.store.transaction() as s:
            if self.instance_id is not None:  # the heartbeat rides along: one UPDATE
                instances.beat(s, self.instance_id, self.wf.clock.now())
            if in_progress(s) is not None:
                return done  # a reorganisation is under way: reminders wait for its end
        self.prepare()
        return done + self._due_steps()

    def prepare(self) -> None:
        """Once per process, before the first pass: due times for steps that have none or
        were computed under other settings."""
        if self._prepared:
            return
        duetimes.refresh_due_times(self.store, self.cfg)
        self._prepared = True

    def _due_steps(self) -> int:
        """Only the steps whose due time has come, oldest first, in batches (keyset order,
        so a batch of steps that stay due cannot hide the rest)."""
        now = self.wf.clock.now()
        done, after = 0, None
        while True:
            with self.store.transaction() as s:
                q = select(CaseStep.id, CaseStep.next_check_at).join(
                    Case, Case.id == CaseStep.case_id).where(
                    CaseStep.next_check_at <= now, Case.state.in_(ACTIVE))
                if after is not None:
                    q = q.where(or_(CaseStep.next_check_at > after[0], and_(
                        CaseStep.next_check_at == after[0], CaseStep.id > after[1])))
                rows = s.execute(q.order_by(CaseStep.next_check_at, CaseStep.id)
                                 .limit(self.batch)).all()
            for step_id, _ in rows:
                done += self._visit(step_id, now)
            if len(rows) < self.batch:
                return done
            after = rows[-1]

    def _visit(self, step_id: int, now: datetime) -> int:
        """One step in its own transaction, only if still due (another daemon may have acted
        on it since it was selected)."""
        with self.store.transaction() as s:
            step = s.get(CaseStep, step_id)
            case = s.get(Case, step.case_id) if step else None
            if step is None or case is None:
                return 0
            if step.state != StepState.PENDING:
                step.next_check_at = None
                return 0
            if case.state not in ACTIVE or step.next_check_at is None \
                    or step.next_check_at > now:
                return 0
            return self._step(s, case, step)

    def _step(self, s: Session, case: Case, step: CaseStep) -> int:
        done = self._act(s, case, step)
        if step.state == StepState.PENDING:  # moved on; a decided or closed step was cleared
            step.next_check_at = duetimes.next_check(step, self.cfg)
        return done

    def _act(self, s: Session, case: Case, step: CaseStep) -> int:
        # Directory imports re-resolve every waiting case in their own transaction
        # (App.reroute_after_import); this check is only a cheap guard for a step that is
        # due, so a reminder never goes to someone who no longer holds the post.
        approver = member(s, step.approver_id)
        if self._left(approver, step):
            return self._substitute(s, case, step, approver)
        assert approver is not None
        now = self.wf.clock.now()
        due = duetimes.reminder_at(step, self.cfg)
        late = duetimes.escalation_at(step, self.cfg)
        if now >= late and duetimes.escalates(step) and self._claim(s, step, "escalated_at"):
            return self._escalate(s, case, step, approver)
        if now >= due and step.reminded_at is None and self._claim(s, step, "reminded_at"):
            self.wf.ask(s, case, step, approver, note="reminder")
            return 1
        return 0

    def anchor_histories(self) -> int:
        """Fix the heads of case histories that grew since the last pass in the audit trail."""
        if self.audit is None:
            return 0
        with self.store.transaction() as s:
            return anchor_all(s, self.audit)

    def _budget_periods(self) -> int:
        """Open each budget's new period when the month (or year) turns: the reset, audited."""
        if self.wf.budgets is None:
            return 0
        with self.store.transaction() as s:
            specs = {cs.name: list(cs.budgets) for cs in self.wf.library.book(s).sets
                     if cs.budgets}
            return self.wf.budgets.roll(s, specs) if specs else 0

    def _revision_waits(self) -> int:
        """Cases whose wait for a revised condition has ended go on without one."""
        now = self.wf.clock.now()
        with self.store.transaction() as s:
            waiting = s.execute(select(Case.id, Case.route).where(
                Case.state == CaseState.AWAITING_REVISION)).all()
        done = 0
        for case_id, route in waiting:
            until = datetime.fromisoformat(str((route or {}).get("until", now.isoformat())))
            if until > now:
                continue
            try:
                done += self._resume(case_id)
            except Exception:
                log.exception("timers: case %s could not be resumed after its revision wait",
                              case_id)
        return done

    def _resume(self, case_id: int) -> int:
        with self.store.transaction() as s:
            if not claim_waiting(s, case_id):
                return 0
            case = s.get(Case, case_id)
            if case is None:
                return 0
            s.refresh(case)
            resume_after_wait(self.wf, s, case, "the wait for a revised condition ended "
                              "without one")
            return 1

    def _claim(self, s: Session, step: CaseStep, column: str) -> bool:
        col = getattr(CaseStep, column)
        won = rowcount(s.execute(update(CaseStep).where(CaseStep.id == step.id, col.is_(None))
                                 .values({column: self.wf.clock.now()})
                                 .execution_options(synchronize_session=False)))
        if won:
            s.refresh(step)
        return won == 1

    @staticmethod
    def _left(approver: Member | None, step: CaseStep) -> bool:
        if approver is None or not approver.person.active:
            return True
        post = step.asked_post or {}
        now_unit = approver.unit.id if approver.unit else None
        now_pos = approver.position.id if approver.position else None
        return step.kind in ("approver", "returned", "corrected") and bool(post) and \
            (post.get("unit"), post.get("position")) != (now_unit, now_pos)

    def _substitute(self, s: Session, case: Case, step: CaseStep,
                    approver: Member | None) -> int:
        """The approver's post changed: the step is re-resolved like after an import, so it
        moves to whoever holds the post now, or the case is held; never approved by absence."""
        name = approver.person.name if approver else step.approver_id
        checks = [c for c in check_case(self.wf, s, case) if c.slot == step.slot]
        if not checks or checks[0].outcome == "unchanged":
            if approver is not None:  # still the right person: the post moved with them
                step.asked_post = {"unit": approver.unit.id if approver.unit else None,
                                   "position": approver.position.id if approver.position
                                   else None}
            return 0
        self.wf.record(s, case, "left", approver,
                       detail=f"{name} no longer holds the post they were asked in")
        apply(self.wf, s, checks, f"{name} no longer holds the post they were asked in",
              tell_admin=True)
        return 1

    def _escalate(self, s: Session, case: Case, step: CaseStep, approver: Member) -> int:
        targets, how = proxies_today(self.wf, s, approver), PROXY
        if not targets:
            requester = member(s, case.requester_id) or approver
            res = rank_above(s, Step(name="escalation", resolver="rank-above"),
                             RouteContext(case.case_type, requester, approver, self.wf.today()))
            targets, how = list(res.approvers), NEXT_RANK
        if not targets:
            self.wf.record(s, case, "escalation", None, detail=f"{approver.person.name} has "
                           "waited too long, but has no proxy and nobody ranks above")
            return 0
        ask_beside(self.wf, s, case, step, approver, targets, how,
                   f"{approver.person.name} has not decided within "
                   f"{self.cfg.escalate_after_days} business days", note="escalated")
        return 1
