"""Examination: judging a case against an approver's stored conditions (SPEC 6).

Every applicable condition is evaluated; an item the case leaves unset does not fail.
A condition that needs a system value nobody has set (a factor, a budget) cannot be judged
either way: approving on a missing limit would be as wrong as rejecting on it, so such an
examination decides nothing and the approver is asked in person. The result says which
conditions held, which failed (with the value given and the value required), so the
history and the rejection mail can name each item.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from daemon.conditions.budgets import BudgetError, BudgetSpec, amount_of
from daemon.conditions.expr import activation, evaluate_in
from daemon.conditions.sets import ConditionSet


@dataclass(frozen=True)
class Miss:
    set_name: str
    condition: str
    given: str
    required: str
    document: str = ""  # the condition's document pattern: which attachment to check


@dataclass
class Examination:
    sets: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    missed: list[Miss] = field(default_factory=list)
    unset: list[str] = field(default_factory=list)  # not judged: the case leaves them unset
    undecided: list[str] = field(default_factory=list)  # needs a factor or budget not set
    contact: bool = False  # a failing set's setter wants to decide in person

    @property
    def applies(self) -> bool:
        return bool(self.sets)

    @property
    def passed(self) -> bool:
        return self.applies and not self.missed and not self.undecided

    @property
    def undecidable(self) -> bool:
        """Nothing failed, but a missing system value keeps it from deciding alone."""
        return self.applies and not self.missed and bool(self.undecided)

    def summary(self) -> str:
        parts = [f"sets {', '.join(self.sets)}"]
        if self.held:
            parts.append("held: " + ", ".join(self.held))
        if self.missed:
            parts.append("missed: " + "; ".join(
                f"{m.condition} (given {m.given}, required {m.required})" for m in self.missed))
        if self.unset:
            parts.append("not judged (unset): " + ", ".join(self.unset))
        if self.undecided:
            parts.append("cannot be judged: " + "; ".join(self.undecided))
        return "; ".join(parts)


Remaining = Callable[[ConditionSet, BudgetSpec], Decimal]


def budget_miss(set_name: str, spec: BudgetSpec, amount: Decimal, left: Decimal,
                why: str = "") -> Miss:
    """The amount does not fit in what is left of the period (examination or consumption)."""
    return Miss(set_name, f"{spec.name} budget", f"{spec.field}={amount:,f}",
                f"within the {spec.period}'s remaining budget ({left:,f} of {spec.limit:,f}"
                + (f"; {why}" if why else "") + ")")


def examine(sets: list[ConditionSet], fields: dict[str, Any], kinds: dict[str, str],
            context: dict[str, Any], factors: dict[str, Any] | None = None,
            remaining: Remaining | None = None) -> Examination:
    """Each set's conditions, and its budgets: the amount must fit in what is left."""
    result = Examination()
    for cs in sets:
        result.sets.append(cs.name)
        left = {b.name: remaining(cs, b) for b in cs.budgets} if remaining else {}
        maps = {"factor": factors or {}, "budget": left}
        for spec in cs.budgets if remaining else ():
            label = f"{cs.name}/{spec.name} budget"
            try:
                amount = amount_of(spec, fields)
            except BudgetError as exc:
                result.missed.append(Miss(cs.name, f"{spec.name} budget",
                                          f"{spec.field}={fields.get(spec.field)!r} ({exc})",
                                          "an amount"))
                continue
            if amount is None:
                result.unset.append(label)
            elif amount <= left[spec.name]:
                result.held.append(label)
            else:
                result.missed.append(budget_miss(cs.name, spec, amount, left[spec.name]))
                result.contact = result.contact or cs.contact_on_failure
        act = activation(fields, kinds, context, maps)  # converted once per set
        for cond in cs.conditions:
            out = evaluate_in(cond.expr, act)
            label = f"{cs.name}/{cond.name}"
            system = [m for m in out.missing if m.startswith(("factor.", "budget."))]
            if out.value is None and system and not out.error:
                result.undecided.append(f"{label} ({', '.join(system)} is not set)")
            elif out.value is None and out.missing and not out.error:
                result.unset.append(label)
            elif out.value:
                result.held.append(label)
            else:
                given = ", ".join(f"{f}={fields.get(f)!r}" for f in sorted(cond.expr.fields)) \
                    or "-"
                if out.error:
                    given += f" ({out.error})"
                result.missed.append(Miss(cs.name, cond.name, given, cond.required,
                                          cond.document))
                result.contact = result.contact or cs.contact_on_failure
    return result
