"""Condition-set files: validation names the file and the item."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.conditions.examine import examine
from daemon.conditions.sets import ConditionSetError, build_set

FIELDS = {"purchase": {"amount", "category", "material_code", "delivery_date"}}
GOOD: dict[str, Any] = {"name": "s", "setter": "watanabe",
                        "subjects": {"case_types": ["purchase"], "units": ["sales"]},
                        "conditions": [{"name": "budget", "expr": "case.amount <= 500000"}]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"setter": None}, "setter = \"person-id\" is required"),
        ({"subjects": {"case_types": ["holiday"]}}, "unknown case type 'holiday'"),
        ({"subjects": {"teams": ["x"]}}, "subjects: unknown key 'teams'"),
        ({"conditions": []}, "at least one [[conditions]] is required"),
        ({"conditions": [{"name": "b", "expr": "case.amount <="}]},
         "condition b: does not compile"),
        ({"conditions": [{"name": "b", "expr": "case.amout > 1"}]}, "case.amout is not a field"),
        ({"examples": [{"fields": {}, "expect": "maybe"}]}, "expect = \"approve\" or \"reject\""),
    ],
)
def test_validation(change: dict[str, Any], message: str) -> None:
    body = {**GOOD, **{k: v for k, v in change.items() if v is not None}}
    for k, v in change.items():
        if v is None:
            body.pop(k)
    with pytest.raises(ConditionSetError) as exc:
        build_set(body, "rules/conditions/s.toml", FIELDS)
    assert any(message in e and e.startswith("rules/conditions/s.toml: ")
               for e in exc.value.errors), exc.value.errors


@pytest.mark.parametrize(
    ("case_type", "requester", "units", "covered"),
    [
        ("purchase", "smith", {"sales", "hq"}, True),
        ("travel", "smith", {"sales", "hq"}, False),
        ("purchase", "tanaka", {"eng", "hq"}, False),
    ],
)
def test_subjects(case_type: str, requester: str, units: set[str], covered: bool) -> None:
    cs = build_set(GOOD, "s.toml", {**FIELDS, "travel": set()})
    assert cs.covers(case_type, requester, units) is covered


@pytest.mark.parametrize(
    ("amount", "passed"),
    [("499999", True), ("500000", True), ("500000.5", False), ("500001", False)],
)
def test_budget_boundary_and_unset_items(amount: str, passed: bool) -> None:
    cs = build_set({**GOOD, "conditions": [
        {"name": "budget", "expr": "case.amount <= 500000"},
        {"name": "material", "expr": "!case.material_code.startsWith('99')"}]}, "s", FIELDS)
    exam = examine([cs], {"amount": amount}, {"amount": "money", "material_code": "text"}, {})
    assert exam.passed is passed
    assert exam.unset == ["s/material"]  # unset items never fail
