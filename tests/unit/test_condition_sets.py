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
        ({"examples": [{"fields": {}, "expect": "maybe"}]},
         "expect = \"approve\", \"reject\" or \"ask\""),
        ({"on_failure": ["reserve", "beg"]}, "on_failure: a list of reserve, revise"),
        ({"on_failure": ["reserve"]}, "has \"reserve\" but no [[reservations]]"),
        ({"on_failure": ["proxy"]}, "has \"proxy\" but no proxy"),
        ({"reservations": [{"condition": "nope", "set": {"amount": "1"}}]},
         "condition = must name one of this set's conditions (budget)"),
        ({"reservations": [{"condition": "budget", "set": {"amout": "1"}}]},
         "set: unknown field 'amout'"),
        ({"reservations": [{"condition": "budget", "set": {"amount": "case.amount *"}}]},
         "set.amount: does not compile"),
        ({"revise_wait_hours": 0}, "revise_wait_hours must be a number of hours, more than 0"),
        ({"revise_wait_hours": float("inf")}, "at most a year"),
        ({"examples": 5}, "a value has the wrong type or shape"),
        ({"reservations": [{"condition": ["budget"], "set": {"amount": "1"}}]},
         "a value has the wrong type or shape"),
        ({"hold_range": "case.amont < 3"}, "hold_range: case.amont is not a field"),
        ({"also_required": "ito"}, "also_required: must be a list of person ids"),
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


def test_a_set_for_one_case_replaces_the_same_named_set_there_only() -> None:
    from daemon.conditions.sets import ConditionBook

    book = ConditionBook()
    book.add(build_set(GOOD, "s", FIELDS))
    looser = {**GOOD, "conditions": [{"name": "budget", "expr": "case.amount <= 700000"}]}
    book.add(build_set(looser, "mail", FIELDS, case_number="R-2026-000007"))
    units = {"sales"}
    general = book.for_approver("watanabe", "purchase", "smith", units, "R-2026-000008")
    special = book.for_approver("watanabe", "purchase", "smith", units, "R-2026-000007")
    assert [cs.conditions[0].expr.source for cs in general] == ["case.amount <= 500000"]
    assert [cs.conditions[0].expr.source for cs in special] == ["case.amount <= 700000"]
    assert book.sets == general  # the per-case set is not among the general ones
