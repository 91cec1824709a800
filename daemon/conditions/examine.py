"""Examination: judging a case against an approver's stored conditions (SPEC 6).

Every applicable condition is evaluated; an item the case leaves unset does not fail.
The result says which conditions held, which failed (with the value given and the value
required), so the history and the rejection mail can name each item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daemon.conditions.expr import evaluate
from daemon.conditions.sets import ConditionSet


@dataclass(frozen=True)
class Miss:
    set_name: str
    condition: str
    given: str
    required: str


@dataclass
class Examination:
    sets: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    missed: list[Miss] = field(default_factory=list)
    unset: list[str] = field(default_factory=list)  # not judged: the case leaves them unset
    contact: bool = False  # a failing set's setter wants to decide in person

    @property
    def applies(self) -> bool:
        return bool(self.sets)

    @property
    def passed(self) -> bool:
        return self.applies and not self.missed

    def summary(self) -> str:
        parts = [f"sets {', '.join(self.sets)}"]
        if self.held:
            parts.append("held: " + ", ".join(self.held))
        if self.missed:
            parts.append("missed: " + "; ".join(
                f"{m.condition} (given {m.given}, required {m.required})" for m in self.missed))
        if self.unset:
            parts.append("not judged (unset): " + ", ".join(self.unset))
        return "; ".join(parts)


def examine(sets: list[ConditionSet], fields: dict[str, Any], kinds: dict[str, str],
            context: dict[str, Any]) -> Examination:
    result = Examination()
    for cs in sets:
        result.sets.append(cs.name)
        for cond in cs.conditions:
            out = evaluate(cond.expr, fields, kinds, context)
            label = f"{cs.name}/{cond.name}"
            if out.value is None and out.missing and not out.error:
                result.unset.append(label)
            elif out.value:
                result.held.append(label)
            else:
                given = ", ".join(f"{f}={fields.get(f)!r}" for f in sorted(cond.expr.fields)) \
                    or "-"
                if out.error:
                    given += f" ({out.error})"
                result.missed.append(Miss(cs.name, cond.name, given, cond.required))
                result.contact = result.contact or cs.contact_on_failure
    return result
