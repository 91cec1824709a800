"""Compiled conditions skip celpy's pass-through parse nodes (daemon.conditions.exprtree
`collapse`): every outcome (value, unset items, error text) must be what the full tree
gives, for every shape of expression and every kind of case."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.conditions.expr import _ENV, _EXTRA, Compiled, activation, compile_expr, evaluate_in

KINDS = {"amount": "money", "quantity": "integer", "code": "text", "category": "choice",
         "delivery": "date", "tags": "list", "note": "text"}
EXPRESSIONS = [
    "case.amount <= 500000",
    "case.amount + 1000 > 2 * case.quantity * 100",
    "-case.quantity < 0 && !(case.amount >= 10)",
    "case.code.startsWith('10') || case.code.endsWith('9')",
    "case.code.matches('^[0-9]+$') && size(case.code) == 4",
    "!(case.category in ['weapons', 'services'])",
    "case.category == 'equipment' ? case.amount < 100 : case.quantity >= 1",
    "case.delivery <= date('2027-03-31') && case.delivery > ctx.today",
    "has(case.note) && case.note.contains('urgent')",
    "has(case.tags) && case.tags.exists(t, t == 'cad') && case.tags.all(t, size(t) > 1)",
    "case.tags.exists_one(t, t.startsWith('c'))",
    "size(case.tags.filter(t, t != 'x').map(t, t + '!')) == 2",
    "case.tags[0] == 'cad'",
    "{'a': 1, 'b': 2}[case.code] == 1",
    "int(case.quantity) % 2 == 1 || double(case.amount) / 3.0 > 1.0",
    "case.amount <= factor.cap && budget.monthly >= case.amount",
    "(((case.amount))) < 10 || (case.quantity > 1 && (case.code == '1001' || false))",
    "case.quantity / 0 == 1",
    "case.code < 3",
    "case['amount'] <= 10",
]
CASES: list[dict[str, Any]] = [
    {"amount": "95000", "quantity": 3, "code": "1001", "category": "equipment",
     "delivery": "2026-12-01", "tags": ["cad", "pdf"], "note": "urgent order"},
    {"amount": "600000", "quantity": 1, "code": "9919", "category": "weapons",
     "delivery": "2028-01-01", "tags": ["x"], "note": "none"},
    {"amount": "5", "code": "a"},
    {},
    {"amount": "not money", "quantity": 2},
]
MAPS: list[dict[str, dict[str, Any]]] = [{}, {"factor": {"cap": 100000.0},
                                            "budget": {"monthly": 200000}}]


def full_tree(source: str) -> Compiled:
    """The same condition as celpy builds it, without the pass-through nodes removed."""
    fields = compile_expr(source).fields
    return Compiled(source, fields, _ENV.program(_ENV.compile(source), functions=_EXTRA))


@pytest.mark.parametrize("source", EXPRESSIONS)
def test_collapsed_tree_gives_the_same_outcome(source: str) -> None:
    fast, full = compile_expr(source), full_tree(source)
    for case in CASES:
        for maps in MAPS:
            act = activation(case, KINDS, {"today": "2026-11-20"}, maps)
            assert evaluate_in(fast, act) == evaluate_in(full, act), (case, maps)


def test_the_tree_is_shorter() -> None:
    """Not a timing test: the evaluator has fewer nodes to visit."""
    def count(node: Any) -> int:
        return 1 + sum(count(c) for c in getattr(node, "children", []))

    source = "case.amount <= 500000 && !(case.category in ['a'])"
    assert count(compile_expr(source)._runner.ast) < count(_ENV.compile(source)) / 2
