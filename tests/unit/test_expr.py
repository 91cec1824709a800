"""Tests for CEL conditions: kind conversion, numeric rule, unset fields, errors, speed."""

from __future__ import annotations

import time
from typing import Any

import pytest

from daemon.conditions.expr import (
    Compiled,
    ExprError,
    Outcome,
    check_fields,
    compile_expr,
    evaluate,
)

KINDS = {"amount": "money", "count": "integer", "delivery": "date", "title": "text",
         "category": "choice", "tags": "list", "material_code": "text"}
FIELDS: dict[str, Any] = {"amount": "24500", "count": 3, "delivery": "2026-12-31",
                          "title": "Laptops", "category": "it", "tags": ["urgent", "capex"],
                          "material_code": "1001-A"}
CTX = {"case_type": "travel", "requester_unit": "sales", "today": "2026-06-01"}


def run(source: str, fields: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None) -> Outcome:
    values = FIELDS if fields is None else fields
    return evaluate(compile_expr(source), values, KINDS, CTX if context is None else context)


def value(source: str, fields: dict[str, Any] | None = None) -> bool | None:
    outcome = run(source, fields)
    assert outcome.error is None and outcome.missing == (), outcome
    return outcome.value


# --- each kind arrives as the CEL type its comparisons need -----------------------------

@pytest.mark.parametrize(("source", "expected"), [
    ("case.amount == 24500.0", True),
    ("case.amount == 24500", True),
    ("type(case.amount) == double", True),
    ("case.count == 3", True),
    ("type(case.count) == int", True),
    ("case.count > 2.5", True),
    ("case.delivery == date('2026-12-31')", True),
    ("case.delivery == timestamp('2026-12-31T00:00:00Z')", True),
    ("case.delivery.getFullYear() == 2026", True),
    ("case.title == 'Laptops'", True),
    ("type(case.title) == string", True),
    ("case.category == 'it'", True),
    ("case.tags == ['urgent', 'capex']", True),
    ("size(case.tags) == 2", True),
    ("'capex' in case.tags", True),
    ("'opex' in case.tags", False),
    ("case.tags.exists(t, t.startsWith('urg'))", True),
])
def test_kind_conversion(source: str, expected: bool) -> None:
    assert value(source) is expected


@pytest.mark.parametrize(("fields", "source", "expected"), [
    ({"amount": "12.5"}, "case.amount == 12.5", True),
    ({"amount": 12.5}, "case.amount > 12", True),
    ({"amount": 7}, "case.amount == 7", True),
    ({"amount": "2000000"}, "case.amount <= 2000000", True),
    ({"count": "4"}, "case.count == 4", True),
    ({"count": 4.0}, "case.count == 4", True),
    ({"tags": "solo"}, "case.tags == ['solo']", True),
    ({"tags": []}, "size(case.tags) == 0", True),
    ({"title": ""}, "case.title == ''", True),
])
def test_stored_value_variants(fields: dict[str, Any], source: str, expected: bool) -> None:
    assert value(source, fields) is expected


@pytest.mark.parametrize(("fields", "needle"), [
    ({"amount": "24,500"}, "'amount' holds '24,500', which is not a valid money"),
    ({"amount": True}, "which is not a valid money"),
    ({"amount": "NaN"}, "which is not a valid money"),
    ({"count": 3.5}, "'count' holds 3.5, which is not a valid integer"),
    ({"delivery": "31/12/2026"}, "which is not a valid date"),
    # An example's value past a CEL int, or 5,000 digits long: quoted short, still refused.
    ({"count": 10**30}, "'count' holds 1000000000000000000000000000000, which is not a "
                        "valid integer"),
    ({"count": "9" * 5000}, "'count' holds '" + "9" * 58 + "…, which is not a valid integer"),
    ({"count": 10**5000}, "'count' holds a number of about 5000 digits, which is not a valid "
                          "integer"),
])
def test_unusable_stored_value_is_an_error(fields: dict[str, Any], needle: str) -> None:
    outcome = run("case.amount > 0 || case.count > 0 || case.delivery > ctx.today", fields)
    assert outcome.value is None and outcome.missing == ()
    assert outcome.error is not None and needle in outcome.error


# --- the numeric rule: int literals and double literals both work against money ---------

AMOUNTS = ["49999", "50000", "50000.5", "50001"]
THRESHOLDS = [
    ("case.amount < {n}", [True, False, False, False]),
    ("case.amount <= {n}", [True, True, False, False]),
    ("case.amount >= {n}", [False, True, True, True]),
    ("case.amount > {n}", [False, False, True, True]),
    ("case.amount == {n}", [False, True, False, False]),
    ("case.amount != {n}", [True, False, True, True]),
    ("{n} > case.amount", [True, False, False, False]),
    ("{n} <= case.amount", [False, True, True, True]),
    ("case.amount in [{n}, 1]", [False, True, False, False]),
]


@pytest.mark.parametrize("literal", ["50000", "50000.0"])
@pytest.mark.parametrize(("template", "expected"), THRESHOLDS)
def test_threshold_boundaries(template: str, expected: list[bool], literal: str) -> None:
    expr = compile_expr(template.format(n=literal))
    got = [evaluate(expr, {"amount": a}, KINDS).value for a in AMOUNTS]
    assert got == expected


@pytest.mark.parametrize(("source", "expected"), [
    ("case.amount * 2 > 100000", [False, False, True, True]),
    ("case.amount / 2 >= 25000", [False, True, True, True]),
    ("case.amount + 1 > 50001", [False, False, True, True]),
    ("case.amount - 50000 == 0", [False, True, False, False]),
    ("int(case.amount) == 50000", [False, True, True, False]),
])
def test_money_arithmetic_with_int_literals(source: str, expected: list[bool]) -> None:
    expr = compile_expr(source)
    assert [evaluate(expr, {"amount": a}, KINDS).value for a in AMOUNTS] == expected


def test_integer_field_stays_integer() -> None:
    expr = compile_expr("case.count < 10 && case.count % 2 == 1")
    assert [evaluate(expr, {"count": n}, KINDS).value for n in (9, 10, 8)] == [True, False, False]


# --- dates ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("delivery", "le", "lt", "after_today"), [
    ("2026-12-30", True, True, True),
    ("2026-12-31", True, False, True),
    ("2027-01-01", False, False, True),
    ("2026-06-01", True, True, False),
])
def test_date_boundaries(delivery: str, le: bool, lt: bool, after_today: bool) -> None:
    fields = {"delivery": delivery}
    assert value("case.delivery <= date('2026-12-31')", fields) is le
    assert value("case.delivery < date('2026-12-31')", fields) is lt
    assert value("case.delivery > ctx.today", fields) is after_today


def test_date_function_with_a_bad_runtime_string_is_an_error() -> None:
    outcome = run("date(case.title) < case.delivery")
    assert outcome.value is None
    assert outcome.error == "date('Laptops') is not a date like '2026-12-31'"


def test_context_date_object_is_accepted() -> None:
    import datetime as dt
    outcome = run("case.delivery > ctx.today", context={"today": dt.date(2026, 12, 31)})
    assert outcome == Outcome(False, (), None)


# --- strings, lists, logic -------------------------------------------------------------------

@pytest.mark.parametrize(("source", "expected"), [
    ("case.material_code.startsWith('10')", True),
    ("case.material_code.startsWith('20')", False),
    ("case.material_code.endsWith('-A')", True),
    ("case.title.contains('top')", True),
    ("case.material_code.matches('^[0-9]{4}-[A-Z]$')", True),
    ("size(case.title) == 7", True),
    ("!(case.category in ['weapons'])", True),
    ("!(case.category in ['weapons', 'it'])", False),
    ("case.category in ['it', 'office'] && case.amount < 50000", True),
    ("case.category == 'weapons' || case.count > 2", True),
    ("case.amount > 10000 ? case.count > 5 : true", False),
    ("!case.tags.all(t, t == 'urgent')", True),
    ("case.amount / 0 > 1", True),  # CEL doubles follow IEEE 754: x / 0.0 is infinity
])
def test_strings_lists_and_logic(source: str, expected: bool) -> None:
    assert value(source) is expected


@pytest.mark.parametrize(("source", "expected"), [
    ("ctx.case_type == 'travel'", True),
    ("ctx.case_type == 'purchase'", False),
    ("ctx.requester_unit in ['sales', 'marketing'] && case.amount < 50000", True),
])
def test_context_access(source: str, expected: bool) -> None:
    assert value(source) is expected


def test_absent_context_key_is_an_error_not_missing() -> None:
    outcome = run("ctx.case_type == 'travel'", context={})
    assert outcome == Outcome(None, (), "ctx.case_type is not set at column 1")


# --- unset fields -----------------------------------------------------------------------------

@pytest.mark.parametrize(("source", "fields", "expected"), [
    ("case.amount < 50000", {}, Outcome(None, ("amount",))),
    ("case.amount < 50000", {"amount": None}, Outcome(None, ("amount",))),
    ("case['amount'] < 50000", {}, Outcome(None, ("amount",))),
    ("!(case.category in ['weapons'])", {}, Outcome(None, ("category",))),
    ("case.category == 'it' ? true : false", {}, Outcome(None, ("category",))),
    ("case.amount > 1 || case.count > 1", {}, Outcome(None, ("amount", "count"))),
    ("case.amount > 1 && case.count > 1", {"amount": "5"}, Outcome(None, ("count",))),
    ("has(case.count) && case.count > 1", {}, Outcome(False)),
    ("!has(case.count) || case.count > 1", {}, Outcome(True)),
    ("has(case.count) && case.count > 1", {"count": 2}, Outcome(True)),
    # CEL's && and || are commutative: a decided side wins over an unset one.
    ("case.count > 1 && false", {}, Outcome(False)),
    ("case.count > 1 || ctx.case_type == 'travel'", {}, Outcome(True)),
])
def test_unset_fields(source: str, fields: dict[str, Any], expected: Outcome) -> None:
    assert run(source, fields) == expected


# --- evaluation errors ---------------------------------------------------------------------

@pytest.mark.parametrize(("source", "message"), [
    ("case.title > 5", "cannot use '>' with text and integer at column 1 (case.title > 5)"),
    ("case.title + 1 == 'x'", "cannot use '+' with text and integer at column 1 (case.title + 1)"),
    ("case.amount.startsWith('1')",
     "startsWith() cannot be used with this kind of value at column 13"),
    ("1 / 0 == 1", "division by zero at column 1 (1 / 0)"),
    ("case.amount", "the condition gives a number value, not true or false"),
    ("case.title", "the condition gives a text value, not true or false"),
])
def test_evaluation_errors(source: str, message: str) -> None:
    outcome = run(source)
    assert outcome.value is None and outcome.missing == ()
    assert outcome.error is not None and outcome.error.startswith(message), outcome.error


# --- compile errors -------------------------------------------------------------------------

@pytest.mark.parametrize(("source", "message"), [
    ("", "the condition is empty"),
    ("case.amount <", "syntax error at the end: the condition ends too early "
                      "(after 'case.amount <')"),
    ("case.amount < 5)", "syntax error at column 16: unexpected ')' (after 'case.amount < 5')"),
    ("case.amount # 5", "syntax error at column 13: unexpected character '#' "
                        "(after 'case.amount')"),
    ("case.a &&\n  case.b ]", "syntax error at line 2, column 10: unexpected ']' "
                              "(after 'case.b')"),
    ("foo(1)", "unknown function 'foo' at column 1"),
    ("case.title.startWith('1')",
     "unknown function 'startWith' at column 12; did you mean 'startsWith'?"),
    ("today() > case.delivery", "unknown function 'today' at column 1"),
    ("cse.amount > 1", "unknown name 'cse' at column 1; write case.<field>, ctx.<name>, "
     "factor.<name> or budget.<name>"),
    ("case.tags.exists(t, t == x)",
     "unknown name 'x' at column 26; write case.<field>, ctx.<name>, factor.<name> or "
     "budget.<name>"),
    ("case.delivery < date('2026-02-30')",
     "date('2026-02-30') at column 17 is not a date like '2026-12-31'"),
    ("case.tags.exists(a, case.tags.exists(b, case.tags.exists(c, a == c)))",
     "exists() at column 51 is nested 3 deep in all/exists/map/filter; at most 2 are allowed"),
    ("(" * 400 + "1" + ")" * 400 + " > 0",
     "the condition is nested too deeply; split it into simpler parts"),
])
def test_compile_errors(source: str, message: str) -> None:
    with pytest.raises(ExprError) as caught:
        compile_expr(source)
    assert str(caught.value) == message
    assert len(str(caught.value).splitlines()) == 1


# --- static analysis --------------------------------------------------------------------

@pytest.mark.parametrize(("source", "fields"), [
    ("case.amount < 50000 && case['count'] > 1", {"amount", "count"}),
    ("has(case.x) && ctx.today < case.delivery", {"x", "delivery"}),
    ("'case.fake' == case.title", {"title"}),
    ("ctx.amount > 1", set()),
    ("case.tags.exists(t, t == case.category)", {"tags", "category"}),
])
def test_fields(source: str, fields: set[str]) -> None:
    assert compile_expr(source).fields == frozenset(fields)


def test_check_fields() -> None:
    expr = compile_expr("case.amout < 5 && case.title == 'x' && case.zzz > 1")
    assert check_fields(expr, KINDS) == [
        "case.amout is not a field of this case type; did you mean case.amount?",
        "case.zzz is not a field of this case type",
    ]
    assert check_fields(compile_expr("case.amount < 5"), KINDS) == []


def test_compiled_is_a_value() -> None:
    a, b = compile_expr("case.amount < 5"), compile_expr("case.amount < 5")
    assert isinstance(a, Compiled) and a == b and hash(a) == hash(b)
    assert "runner" not in repr(a)


# --- size and speed -----------------------------------------------------------------------

@pytest.mark.parametrize("op", ["&&", "||"])
def test_long_chain_compiles_and_runs(op: str) -> None:
    terms = 500
    source = f" {op} ".join(f"case.f{i} < {i + 1}" for i in range(terms))
    started = time.perf_counter()
    expr = compile_expr(source)
    fields = {f"f{i}": i for i in range(terms)}  # every term true
    kinds = {name: "integer" for name in fields}
    assert evaluate(expr, fields, kinds).value is True
    fields["f250"] = 9999  # one term false
    assert evaluate(expr, fields, kinds).value is (op == "||")
    elapsed = time.perf_counter() - started
    print(f"\n500-term {op} chain: compile + 2 evaluations {elapsed * 1000:.0f} ms")
    assert elapsed < 10


def test_evaluation_time() -> None:
    expr = compile_expr("case.amount < 50000 && ctx.case_type == 'travel' "
                        "&& !(case.category in ['weapons'])")
    rounds = 500
    started = time.perf_counter()
    for _ in range(rounds):
        assert evaluate(expr, FIELDS, KINDS, CTX).value is True
    per_call = (time.perf_counter() - started) / rounds
    print(f"\nper-evaluation time: {per_call * 1e6:.0f} µs")
