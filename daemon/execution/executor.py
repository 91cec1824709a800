"""Whether an approved case is executed, where, and when (SPEC 6.5).

Called inside the transaction that approves the case, so the decision, its history and the
work item that will send the request commit together with the approval (or not at all).
Only an approval the setter made in advance with stored conditions marked `execute = true`
lets ringi act on the company's behalf; a case approved by people alone is left for the
requester to carry out, and they are told so in the approval notice.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.cases.states import StepState
from daemon.cases.workflow import Workflow
from daemon.clock import Clock
from daemon.directory.lookup import member
from daemon.execution.calendar import next_allowed
from daemon.execution.destinations import Destinations
from daemon.notify.views import local_time
from daemon.store.condition_models import Execution
from daemon.store.models import Case, CaseStep
from daemon.workqueue.queue import Queues, enqueue


class ExecState:
    SCHEDULED = "scheduled"
    SENT = "sent"
    FAILED = "failed"
    NOT_EXECUTED = "not_executed"


NOT_ENABLED = "approved by people; no stored condition enables automatic execution"


class Executions:
    def __init__(self, workflow: Workflow, destinations: Destinations, clock: Clock,
                 max_attempts: int) -> None:
        self.wf = workflow
        self.destinations = destinations
        self.clock = clock
        self.max_attempts = max_attempts

    def enabled_by(self, s: Session, case: Case) -> list[str]:
        """Condition sets with `execute = true` behind an automatic approval this round."""
        requester = member(s, case.requester_id)
        units = self.wf.units_of(s, requester) if requester else set()
        names: list[str] = []
        book = self.wf.library.book(s)  # the versions in force, not only the files
        for step in s.scalars(select(CaseStep).where(
                CaseStep.case_id == case.id, CaseStep.round == case.round,
                CaseStep.kind == "automatic", CaseStep.state == StepState.APPROVED)
                .order_by(CaseStep.seq)):
            # The sets that approved: a proxy's own, when a proxy approved by them.
            names += [cs.name for cs in book.for_approver(
                step.decided_by or step.approver_id, case.case_type, case.requester_id,
                units, case.number) if cs.execute]
        return list(dict.fromkeys(names))

    def on_approved(self, s: Session, case: Case) -> Execution:
        """Decide and record; the approval notice tells the requester (view.execution)."""
        now = self.clock.now()
        enabling = self.enabled_by(s, case)
        if not enabling:
            return self._not_executed(s, case, "not_enabled", NOT_ENABLED)
        facts = self.wf.facts(s, case)
        dest = self.destinations.choose(case.case_type, facts.fields, facts.kinds,
                                        facts.context)
        sets = ", ".join(enabling)
        if dest is None:
            return self._not_executed(
                s, case, "no_destination",
                f"enabled by {sets}, but no destination takes this {case.case_type} case "
                f"({self.destinations.source or 'no destinations file'})")
        due = next_allowed(now, dest.calendar)
        ex = Execution(case_id=case.id, destination=dest.name, title=dest.title,
                       address=dest.address, state=ExecState.SCHEDULED, due_at=due,
                       created_at=now, updated_at=now, timezone=dest.calendar.timezone.key,
                       reason="", detail=f"enabled by {sets}")
        s.add(ex)
        s.flush()
        enqueue(s, Queues.EXECUTION, ex.id, now, self.max_attempts, not_before=due)
        when = "now" if due <= now else (
            f"for {local_time(due, ex.timezone, 'en')}, the destination's next opening "
            f"({dest.calendar.describe()})")
        self.wf.record(s, case, "execution", None,
                       detail=f"execution request to {dest.name} <{dest.address}> scheduled "
                       f"{when}; enabled by {sets}")
        return ex

    def _not_executed(self, s: Session, case: Case, reason: str, detail: str) -> Execution:
        now = self.clock.now()
        ex = Execution(case_id=case.id, destination="", title="", address="",
                       state=ExecState.NOT_EXECUTED, due_at=now, created_at=now,
                       updated_at=now, timezone="UTC", reason=reason, detail=detail)
        s.add(ex)
        self.wf.record(s, case, "execution", None, detail=f"not executed: {detail}")
        return ex
