"""What a case's approvals take from period budgets, and giving it back.

Each use is kept on the approving step (``pos["uses"]``), so exactly what was taken can be
given back once, even after the set's budgets changed. Recording a case event is passed in
as a callable, so this module does not depend on daemon.cases (cases -> conditions only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.clock import Clock
from daemon.conditions.budgets import BudgetError, Budgets, BudgetSpec, amount_of
from daemon.conditions.examine import Miss, budget_miss
from daemon.conditions.sets import ConditionSet
from daemon.directory.lookup import Member
from daemon.store.models import Case, CaseStep

Use = dict[str, str]
SetsOf = Callable[[Session, Case, Member], Sequence[ConditionSet]]


class Record(Protocol):
    """Adds an event to the case's history (daemon.cases.workflow.Workflow.record)."""

    def __call__(self, s: Session, case: Case, kind: str, actor: Member | None,
                 detail: str = "") -> None: ...


class CaseBudgets:
    def __init__(self, store: Budgets | None, clock: Clock, record: Record,
                 sets_of: SetsOf) -> None:
        """`store` None: no budgets are kept and every method leaves the case alone.
        `sets_of`: the sets an approver keeps for the case's requester (read when charged,
        so a reloaded condition library is seen)."""
        self.store = store
        self.clock = clock
        self.record = record
        self.sets_of = sets_of

    def consume(self, s: Session, case: Case, sets: list[ConditionSet],
                by: Member) -> tuple[list[Miss], list[Use]]:
        """An approval by stored conditions uses up the sets' period budgets, atomically.

        Returns (the budget that no longer covers the amount, as a miss: a concurrent
        approval took it since the examination; the uses taken, to keep on the step so
        exactly they can be given back). On a miss whatever was taken is given back.
        """
        if self.store is None:
            return [], []
        uses: list[Use] = []
        for cs in sets:
            for spec in cs.budgets:
                try:
                    amount = amount_of(spec, case.fields)
                except BudgetError:
                    amount = None  # the examination already judged it
                if amount is None:
                    continue
                if self.store.consume(s, cs.name, spec, amount, case.number, by.id):
                    uses.append(self._use(cs.name, spec, amount))
                    continue
                self._give_back(s, case, uses, "the approval did not go through")
                left = self.store.remaining(s, cs.name, spec)
                return [budget_miss(cs.name, spec, amount, left,
                                    "another approval used it meanwhile")], []
        return [], uses

    def release(self, s: Session, case: Case, why: str,
                steps: Sequence[CaseStep] | None = None) -> None:
        """What this round's approvals consumed comes back, exactly as recorded on their
        steps, when the case ends without them counting (rejected, cancelled, reapplied),
        or only `steps`' when those approvals are undone by a send-back.
        Each use is given back once."""
        if self.store is None:
            return
        for st in steps if steps is not None else s.scalars(select(CaseStep).where(
                CaseStep.case_id == case.id, CaseStep.round == case.round)).all():
            pos = dict(st.pos or {})
            if not pos.get("uses") or pos.get("released"):
                continue
            self._give_back(s, case, list(pos["uses"]), why)
            st.pos = {**pos, "released": True}

    def charge(self, s: Session, case: Case, approver: Member, step: CaseStep) -> None:
        """A setter approving in person still uses up their budgets (it may go over), unless
        this round already took the amount from that budget (e.g. their earlier automatic
        approval, before the case was sent back to them)."""
        if self.store is None:
            return
        taken = {(u["set"], u["budget"]) for st in s.scalars(select(CaseStep).where(
            CaseStep.case_id == case.id, CaseStep.round == case.round)).all()
            if not (st.pos or {}).get("released") for u in (st.pos or {}).get("uses", [])}
        uses = []
        for cs in self.sets_of(s, case, approver):
            for spec in cs.budgets:
                try:
                    amount = amount_of(spec, case.fields)
                except BudgetError:
                    continue
                if amount is not None and (cs.name, spec.name) not in taken:
                    self.store.charge(s, cs.name, spec, amount, case.number, approver.id)
                    uses.append(self._use(cs.name, spec, amount))
        if uses:
            step.pos = {**(step.pos or {}), "uses": uses}

    def _use(self, set_name: str, spec: BudgetSpec, amount: Decimal) -> Use:
        return {"set": set_name, "budget": spec.name, "period": spec.period,
                "limit": str(spec.limit), "field": spec.field, "amount": str(amount),
                "at": self.clock.now().isoformat()}

    def _give_back(self, s: Session, case: Case, uses: list[Use], why: str) -> None:
        assert self.store is not None
        for u in uses:
            spec = BudgetSpec(u["budget"], Decimal(u["limit"]), u["period"], u["field"])
            self.store.release(s, u["set"], spec, Decimal(u["amount"]), case.number, None,
                               when=datetime.fromisoformat(u["at"]))
            self.record(s, case, "budget released", None,
                        detail=f"{u['set']}/{u['budget']}: {Decimal(u['amount']):,f} ({why})")
