"""CEL conditions over case fields, compiled once and evaluated many times.

Numbers: money is always a CEL double, integer fields are CEL ints, and wherever an int meets
a double (comparison, arithmetic, ``in``) the int is promoted to double.  Plain CEL would reject
``case.amount == 50000`` for a double amount; administrators should not need to write ``50000.0``.
Dates are CEL timestamps at 00:00 UTC, so ``case.delivery <= date('2026-12-31')`` compares days.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import celpy
import lark
from celpy import celtypes as ct
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError, base_functions, operator_in

from daemon.conditions.exprtree import (
    Node,
    balance,
    case_field,
    collapse,
    external,
    ident,
    string_literal,
    where,
)


class ExprError(Exception):
    """A condition that does not compile: message says where and why, in plain words."""


@dataclass(frozen=True)
class Compiled:
    source: str
    fields: frozenset[str]
    _runner: Any = field(compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class Outcome:
    value: bool | None
    missing: tuple[str, ...] = ()
    error: str | None = None


_MACROS = {"has", "dyn", "all", "exists", "exists_one", "map", "filter"}
_LOOPS = _MACROS - {"has", "dyn"}
_FUNCTIONS = {n for n in base_functions if n.isidentifier() and n[0] != "_"} | _MACROS | {"date"}
_NAMES = {"case", "ctx", "factor", "budget", "bool", "bytes", "double", "duration", "int",
          "list", "map", "null_type", "string", "timestamp", "uint", "type"}
# Evaluation recurses about five Python frames per tree level; celpy allows 2500 frames.
_MAX_DEPTH = 300
# all/exists/map/filter inside one another multiply work; two levels is plenty for conditions.
_MAX_LOOPS = 2
_TOO_DEEP = "the condition is nested too deeply; split it into simpler parts"
_OPS = {"relation_lt": "<", "relation_le": "<=", "relation_gt": ">", "relation_ge": ">=",
        "relation_eq": "==", "relation_ne": "!=", "relation_in": "in", "addition_add": "+",
        "addition_sub": "-", "multiplication_mul": "*", "multiplication_div": "/",
        "multiplication_mod": "%", "unary_not": "!", "unary_neg": "-", "_&&_": "&&",
        "_||_": "||"}
_WORDS = {"String": "text", "Int": "integer", "Uint": "integer", "Double": "number",
          "Timestamp": "date", "Duration": "duration", "List": "list", "Map": "map",
          "Bool": "true/false", "Bytes": "bytes"}

_previous_limit = sys.getrecursionlimit()
_ENV = celpy.Environment()  # sets the recursion limit to 2500 as a side effect
sys.setrecursionlimit(max(_previous_limit, sys.getrecursionlimit()))


def _timestamp(value: str | dt.date) -> ct.TimestampType:
    day = value if isinstance(value, dt.date) else dt.date.fromisoformat(value)
    if isinstance(day, dt.datetime):
        return ct.TimestampType(day if day.tzinfo else day.replace(tzinfo=dt.UTC))
    return ct.TimestampType(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC))


def _date(text: Any) -> Any:
    """CEL ``date('2026-12-31')``; a bad string is a CEL error value, not a Python crash."""
    try:
        return _timestamp(str(text))
    except ValueError:
        return CELEvalError(f"date('{text}') is not a date like '2026-12-31'", ValueError, None)


def _promoting(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        if isinstance(a, ct.DoubleType) and isinstance(b, ct.IntType):
            b = ct.DoubleType(b)
        elif isinstance(a, ct.IntType) and isinstance(b, ct.DoubleType):
            a = ct.DoubleType(a)
        return op(a, b)
    return apply


def _in(item: Any, container: Any) -> Any:
    num = (ct.IntType, ct.DoubleType)
    if isinstance(item, num) and isinstance(container, list) and any(
            isinstance(x, ct.DoubleType) for x in [item, *container]):
        item = ct.DoubleType(item)
        container = ct.ListType(ct.DoubleType(x) if isinstance(x, num) else x for x in container)
    return operator_in(item, container)


def _error_first(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """celpy turns ``error || error`` into a new error that hides both; keep the first."""
    def apply(a: Any, b: Any) -> Any:
        return a if isinstance(a, CELEvalError) and isinstance(b, CELEvalError) else op(a, b)
    return apply


def _condition(test: Any, yes: Any, no: Any) -> Any:
    """An error in the test of ``a ? b : c`` is that error, not a new 'no overload' one."""
    return test if isinstance(test, CELEvalError) else ct.logical_condition(test, yes, no)


_EXTRA: dict[str, Any] = {
    name: _promoting(base_functions[name])
    for name in ("_<_", "_<=_", "_>_", "_>=_", "_==_", "_!=_", "_+_", "_-_", "_*_", "_/_", "_%_")
} | {"_in_": _in, "date": _date, "_&&_": _error_first(ct.logical_and),
     "_||_": _error_first(ct.logical_or), "_?_:_": _condition}


def _analyse(root: Node) -> set[str]:
    """Case fields referred to; unknown functions or names, bad date literals and shapes
    that could exhaust the stack or run for minutes (nested comprehensions) are errors."""
    stack: list[tuple[Node, int, int]] = [(root, 1, 0)]
    fields: set[str] = set()
    bound: set[str] = set()
    idents: list[Node] = []
    while stack:
        node, depth, loops = stack.pop()
        token: Any = None  # the function name token, for error columns
        if depth > _MAX_DEPTH:
            raise ExprError(_TOO_DEEP)
        if (name := case_field(node)) is not None:
            fields.add(name)
        elif node.data == "ident":
            idents.append(node)
        elif node.data in ("ident_arg", "member_dot_arg", "dot_ident_arg"):
            token = node.children[1 if node.data == "member_dot_arg" else 0]
            name = str(token)
            args = [c for c in node.children if isinstance(c, lark.Tree) and c.data == "exprlist"]
            exprs = args[0].children if args else []
            if name not in _FUNCTIONS:
                close = difflib.get_close_matches(name, sorted(_FUNCTIONS), 1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ExprError(f"unknown function '{name}'{where(token)}{hint}")
            if name in _LOOPS and exprs and (var := ident(exprs[0])):
                bound.add(var)
            if name == "date" and exprs and (text := string_literal(exprs[0])) is not None:
                try:
                    dt.date.fromisoformat(text)
                except ValueError:
                    raise ExprError(f"date('{text}'){where(token)} is not a date "
                                    "like '2026-12-31'") from None
        for child in node.children:
            if isinstance(child, lark.Tree):
                inner = loops + (name in _LOOPS and child.data == "exprlist")
                if inner > _MAX_LOOPS:
                    raise ExprError(f"{name}(){where(token)} is nested {inner} deep in "
                                    f"all/exists/map/filter; at most {_MAX_LOOPS} are allowed")
                stack.append((child, depth + 1, inner))
    for node in idents:
        if (var := str(node.children[0])) not in _NAMES | bound:
            raise ExprError(f"unknown name '{var}'{where(node.children[0])}; "
                            "write case.<field>, ctx.<name>, factor.<name> or budget.<name>")
    return fields


def _parse_message(source: str, error: CELParseError) -> str:
    """One line from lark's exception: where, what was unexpected, and the text before it."""
    cause = error.__context__
    token = getattr(cause, "token", None)
    line, column = error.line or 1, error.column if isinstance(error.column, int) else 0
    if token is not None and token.type == "$END":
        what, before, where = "the condition ends too early", source.strip(), "at the end"
    else:
        what = (f"unexpected '{token}'" if token is not None
                else f"unexpected character '{getattr(cause, 'char', '?')}'")
        lines = source.splitlines() or [""]
        before = lines[min(line, len(lines)) - 1][: max(column - 1, 0)].strip()
        where = f"at line {line}, column {column}" if "\n" in source.strip() else (
            f"at column {column}")
    return f"syntax error {where}: {what}" + (f" (after '{before[-40:]}')" if before else "")


def compile_expr(source: str) -> Compiled:
    """Parse and check a condition; raise ExprError with a readable message if it is wrong."""
    if not source.strip():
        raise ExprError("the condition is empty")
    try:
        tree = _ENV.compile(source)
    except CELParseError as error:
        raise ExprError(_parse_message(source, error)) from None
    except RecursionError:
        raise ExprError(_TOO_DEEP) from None
    balance(tree)
    fields = _analyse(tree)
    collapse(tree)
    return Compiled(source, frozenset(fields), _ENV.program(tree, functions=_EXTRA))


def check_fields(expr: Compiled, known: Iterable[str]) -> list[str]:
    """Messages for case.<name> references to fields the case type does not have."""
    names = sorted(set(known))
    messages = []
    for name in sorted(expr.fields - set(names)):
        close = difflib.get_close_matches(name, names, 1)
        hint = f"; did you mean case.{close[0]}?" if close else ""
        messages.append(f"case.{name} is not a field of this case type{hint}")
    return messages


def _convert(value: Any, kind: str | None) -> Any:
    """A stored JSON field value as the CEL value its kind promises."""
    if kind in ("money", "integer"):
        number = Decimal(str(value)) if not isinstance(value, bool) else Decimal("NaN")
        if not number.is_finite() or (kind == "integer" and number != int(number)):
            raise ValueError(value)
        return ct.DoubleType(float(number)) if kind == "money" else ct.IntType(int(number))
    if kind == "date":
        return _timestamp(value)
    if kind in ("text", "choice"):
        return ct.StringType(str(value))
    if kind == "list":
        return ct.ListType(ct.StringType(str(v)) for v in (value if isinstance(value, list)
                                                            else [value]))
    return json_to_cel(value)


def _plain(expr: Compiled, error: CELEvalError) -> str:
    """celpy's error text, which names Python classes, rewritten for an administrator."""
    tree, token = error.tree, error.token
    message = str(error.args[0]) if error.args else "evaluation failed"
    place = where(token if token is not None else tree)
    snippet = ""
    if tree is not None and getattr(tree.meta, "end_pos", None) is not None:
        snippet = expr.source[tree.meta.start_pos:tree.meta.end_pos].strip()
    shown = f" ({snippet})" if snippet else ""
    if message.startswith("found no matching overload") or message == "no such overload":
        types = [_WORDS.get(t, t) for t in re.findall(r"celtypes\.(\w+?)Type", message)]
        op = next((_OPS[k] for k in _OPS if k in message), None)
        if op and types:
            return f"cannot use '{op}' with {' and '.join(types)}{place}{shown}"
        what = f"{token}()" if token is not None else "an operator"
        return f"{what} cannot be used with this kind of value{place}{shown}"
    if message.startswith("no such member in mapping") or message == "no such key":
        return f"{snippet or 'a key'} is not set{place}"
    if "divide by zero" in message:
        return f"division by zero{place}{shown}"
    return f"{message.split(' (in ')[0]}{place}{shown}"


def _value(raw: Any) -> Any:
    """A factor or budget value as CEL sees it (dates as timestamps, amounts as doubles)."""
    if isinstance(raw, dt.date):
        return _timestamp(raw)
    if isinstance(raw, Decimal):
        return ct.DoubleType(float(raw))
    return json_to_cel(raw)


def _short(value: Any) -> str:
    """A value quoted in a problem line: an example's 100,000-digit string stays short."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"a number of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def activation(fields: dict[str, Any], kinds: dict[str, str],
               context: dict[str, Any] | None = None,
               maps: dict[str, dict[str, Any]] | None = None) -> dict[str, Any] | str:
    """The case as CEL sees it (converted once for all the conditions of a set), or the
    reason a value cannot be used."""
    external: dict[str, Any] = {}
    for top in ("factor", "budget"):
        try:
            external[top] = ct.MapType({ct.StringType(k): _value(v)
                                        for k, v in (maps or {}).get(top, {}).items()})
        except (ValueError, TypeError):
            return f"a {top} value is not usable"
    case: dict[Any, Any] = {}
    ctx: dict[Any, Any] = {}
    for name, raw in fields.items():
        try:
            if raw is not None:
                case[ct.StringType(name)] = _convert(raw, kinds.get(name))
        except (ValueError, TypeError, ArithmeticError):
            what = f"a valid {kinds[name]}" if name in kinds else "usable"
            return f"case field '{name}' holds {_short(raw)}, which is not {what}"
    for name, raw in (context or {}).items():
        try:
            dated = isinstance(raw, dt.date) or (name == "today" and isinstance(raw, str))
            ctx[ct.StringType(name)] = _timestamp(raw) if dated else json_to_cel(raw)
        except (ValueError, TypeError):
            return f"ctx.{name} holds {_short(raw)}, which is not usable"
    return {"case": ct.MapType(case), "ctx": ct.MapType(ctx), **external}


def evaluate(expr: Compiled, fields: dict[str, Any], kinds: dict[str, str],
             context: dict[str, Any] | None = None,
             maps: dict[str, dict[str, Any]] | None = None) -> Outcome:
    """Evaluate against one case; never raises: problems come back inside the Outcome.

    `maps` holds the external values (`factor.NAME`) and the set's remaining budgets
    (`budget.NAME`); one that is not set comes back in `missing` as "factor.NAME", never
    as a failure (the examination then decides nothing, see daemon.conditions.examine).
    """
    return evaluate_in(expr, activation(fields, kinds, context, maps))


def evaluate_in(expr: Compiled, act: dict[str, Any] | str) -> Outcome:
    """`evaluate` with an activation already built (see `activation`)."""
    if isinstance(act, str):
        return Outcome(None, (), act)
    try:
        value = expr._runner.evaluate(act)
    except CELEvalError as error:
        present = {str(k) for k in act["case"]}
        unset = sorted(expr.fields - present)
        if error.tree is not None and case_field(error.tree) in unset:
            return Outcome(None, tuple(unset), None)
        if error.tree is not None and (name := external(error.tree)) is not None:
            return Outcome(None, (name,), None)
        return Outcome(None, (), _plain(expr, error))
    except RecursionError:
        return Outcome(None, (), _TOO_DEEP)
    except Exception as error:  # a celpy defect must not take the daemon down
        return Outcome(None, (), f"the condition could not be evaluated: {error}")
    if not isinstance(value, ct.BoolType):
        kind = _WORDS.get(type(value).__name__.removesuffix("Type"), type(value).__name__)
        return Outcome(None, (), f"the condition gives a {kind} value, not true or false")
    return Outcome(bool(value), (), None)


def compute(expr: Compiled, fields: dict[str, Any], kinds: dict[str, str],
            context: dict[str, Any] | None = None,
            maps: dict[str, dict[str, Any]] | None = None) -> tuple[Any, str | None]:
    """A value (not a judgement), e.g. a reservation's capped amount: (value, problem)."""
    act = activation(fields, kinds, context, maps)
    if isinstance(act, str):
        return None, act
    try:
        value = expr._runner.evaluate(act)
    except CELEvalError as error:
        return None, _plain(expr, error)
    except Exception as error:  # a celpy defect must not take the daemon down
        return None, f"the expression could not be evaluated: {error}"
    if isinstance(value, ct.BoolType):
        return bool(value), None
    if isinstance(value, (ct.IntType, ct.UintType)):
        return int(value), None
    if isinstance(value, ct.DoubleType):
        number = Decimal(repr(float(value)))
        return (int(number) if number == number.to_integral_value() else number), None
    if isinstance(value, ct.TimestampType):
        return value.date().isoformat(), None
    return str(value), None
