"""Stored approval conditions as data: `rules/conditions/*.toml`, one condition set a file.

A set belongs to a setter (an approver) and applies to subjects: case types, and the
requester's person or unit. Each condition is a named CEL expression over the case; an
item the case leaves unset never fails (SPEC 6). Example cases stored beside the
conditions are run by `ringi rules check`.
"""

from __future__ import annotations

import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.conditions.budgets import BudgetSpec, parse_budget_specs
from daemon.conditions.expr import Compiled, ExprError, check_fields, compile_expr
from daemon.conditions.setparts import RECOVERY_KEYS, Recovery, parse_recovery
from daemon.parsing.numbers import loads_toml

SET_KEYS = {"name", "setter", "subjects", "contact_on_failure", "conditions", "examples",
            "execute", "budgets"} | RECOVERY_KEYS
SUBJECT_KEYS = {"case_types", "units", "people"}
CONDITION_KEYS = {"name", "expr", "required", "document"}
EXAMPLE_KEYS = {"name", "fields", "requester_unit", "requester", "case_type", "expect",
                "failing", "factors", "budgets", "today"}
EXPECTS = ("approve", "reject", "ask")  # "ask": a value it needs is missing, a person decides


class ConditionSetError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{len(errors)} problem(s) in condition sets")
        self.errors = errors


@dataclass(frozen=True)
class Condition:
    name: str
    expr: Compiled
    required: str  # what the setter requires, in words (default: the expression)
    document: str = ""  # which attached document the item is checked against (a name glob)


@dataclass(frozen=True)
class Example:
    name: str
    fields: dict[str, Any]
    case_type: str
    requester: str
    requester_unit: str
    expect: str  # one of EXPECTS
    failing: tuple[str, ...]
    factors: dict[str, Any] = field(default_factory=dict)  # factor.NAME values to assume
    budgets: dict[str, Any] = field(default_factory=dict)  # remaining, by budget name
    today: str = ""  # ctx.today (YYYY-MM-DD); the day of the check when empty


@dataclass(frozen=True)
class ConditionSet:
    name: str
    setter: str
    case_types: frozenset[str]
    units: frozenset[str]
    people: frozenset[str]
    contact_on_failure: bool
    conditions: tuple[Condition, ...]
    examples: tuple[Example, ...] = ()
    source: str = ""
    execute: bool = False  # an approval by this set sends the execution request (SPEC 6.5)
    recovery: Recovery = field(default_factory=Recovery)
    budgets: tuple[BudgetSpec, ...] = ()  # period budgets an approval by this set consumes
    case_number: str = ""  # "for case N only": replaces the same-named set for that case
    version: int = 0

    def covers(self, case_type: str, requester: str, requester_units: set[str]) -> bool:
        """Subjects of one kind match if any listed value does; unlisted kinds match all."""
        return ((not self.case_types or case_type in self.case_types)
                and (not self.people or requester in self.people)
                and (not self.units or bool(self.units & requester_units)))


@dataclass
class ConditionBook:
    """Every set, indexed by setter: examining a step looks at its approver's sets only.

    Sets "for case N only" are kept apart and join (or replace the same-named set) only
    when that case is examined.
    """

    sets: list[ConditionSet] = field(default_factory=list)
    by_setter: dict[str, list[ConditionSet]] = field(default_factory=lambda: defaultdict(list))
    for_case: dict[tuple[str, str], list[ConditionSet]] = field(
        default_factory=lambda: defaultdict(list))

    def add(self, cs: ConditionSet) -> None:
        if cs.case_number:
            self.for_case[(cs.case_number, cs.setter)].append(cs)
            return
        self.sets.append(cs)
        self.by_setter[cs.setter].append(cs)

    def for_approver(self, setter: str, case_type: str, requester: str,
                     requester_units: set[str], case_number: str = "") -> list[ConditionSet]:
        special = {cs.name: cs for cs in self.for_case.get((case_number, setter), ())}
        general = [cs for cs in self.by_setter.get(setter, ()) if cs.name not in special
                   and cs.covers(case_type, requester, requester_units)]
        return sorted([*general, *special.values()], key=lambda cs: cs.name)

    def named(self, name: str) -> ConditionSet | None:
        return next((cs for cs in self.sets if cs.name == name), None)


def _strings(value: Any) -> frozenset[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    return None


def build_set(body: dict[str, Any], source: str, fields_of: dict[str, set[str]],
              case_number: str = "", version: int = 0) -> ConditionSet:
    """Validate a set; every problem comes back in one ConditionSetError, never a crash."""
    try:
        return _build_set(body, source, fields_of, case_number, version)
    except (TypeError, AttributeError, ValueError) as exc:  # a value of the wrong shape
        raise ConditionSetError([f"{source}: a value has the wrong type or shape ({exc}); "
                                 "compare with rules/conditions/watanabe-purchase.toml"]) \
            from None


def _build_set(body: dict[str, Any], source: str, fields_of: dict[str, set[str]],
               case_number: str, version: int) -> ConditionSet:
    errors: list[str] = []

    def err(where: str, msg: str) -> None:
        errors.append(f"{source}: {where}: {msg}")

    for key in sorted(set(body) - SET_KEYS):
        err("top level", f"unknown key {key!r}")
    name, setter = body.get("name"), body.get("setter")
    if not isinstance(name, str) or not name:
        err("top level", "name = \"...\" is required")
    if not isinstance(setter, str) or not setter:
        err("top level", "setter = \"person-id\" is required (the approver these are for)")
    subjects = body.get("subjects", {})
    if not isinstance(subjects, dict):
        err("subjects", "must be a table with case_types, units and/or people")
        subjects = {}
    for key in sorted(set(subjects) - SUBJECT_KEYS):
        err("subjects", f"unknown key {key!r}")
    kinds = {k: _strings(subjects.get(k, [])) for k in SUBJECT_KEYS}
    for k, v in kinds.items():
        if v is None:
            err("subjects", f"{k} must be a list of ids")
    case_types = kinds["case_types"] or frozenset()
    for ct in sorted(case_types):
        if ct not in fields_of:
            err("subjects", f"unknown case type {ct!r}")
    known_fields = set().union(*(fields_of.get(ct, set()) for ct in case_types)) \
        if case_types else set().union(*fields_of.values()) if fields_of else set()
    conditions = []
    raw_conditions = body.get("conditions", [])
    if not isinstance(raw_conditions, list) or not (raw_conditions or "hold_range" in body):
        err("conditions", "at least one [[conditions]] is required (or only a hold_range)")
        raw_conditions = []
    for i, raw in enumerate(raw_conditions, 1):
        where = f"condition {raw.get('name', i) if isinstance(raw, dict) else i}"
        if not isinstance(raw, dict) or not isinstance(raw.get("expr"), str):
            err(where, "needs expr = \"...\"")
            continue
        for key in sorted(set(raw) - CONDITION_KEYS):
            err(where, f"unknown key {key!r}")
        try:
            compiled = compile_expr(raw["expr"])
        except ExprError as exc:
            err(where, f"does not compile: {exc}")
            continue
        for problem in check_fields(compiled, known_fields):
            err(where, problem)
        if not isinstance(raw.get("document", ""), str):
            err(where, "document is a file name pattern, e.g. \"*quotation*\"")
            continue
        conditions.append(Condition(str(raw.get("name") or i), compiled,
                                    str(raw.get("required") or raw["expr"]),
                                    str(raw.get("document", ""))))
    recovery, problems = parse_recovery(body, source, known_fields,
                                        {c.name for c in conditions})
    errors.extend(problems)
    budgets, problems = parse_budget_specs(body.get("budgets"), source,
                                           known_fields or None)
    errors.extend(problems)
    examples = []
    for i, raw in enumerate(body.get("examples", []), 1):
        where = f"example {raw.get('name', i) if isinstance(raw, dict) else i}"
        if not isinstance(raw, dict) or raw.get("expect") not in EXPECTS:
            err(where, "needs fields = {...} and expect = \"approve\", \"reject\" or \"ask\"")
            continue
        if not all(isinstance(raw.get(k, {}), dict) for k in ("fields", "factors", "budgets")):
            err(where, "fields, factors and budgets are tables, e.g. factors = { rate = 1.5 }")
            continue
        for key in sorted(set(raw) - EXAMPLE_KEYS):
            err(where, f"unknown key {key!r}")
        examples.append(Example(
            name=str(raw.get("name") or i), fields=dict(raw.get("fields") or {}),
            case_type=str(raw.get("case_type") or next(iter(sorted(case_types)), "")),
            requester=str(raw.get("requester", "")),
            requester_unit=str(raw.get("requester_unit", "")),
            expect=raw["expect"], failing=tuple(raw.get("failing", ())),
            factors=dict(raw.get("factors") or {}), budgets=dict(raw.get("budgets") or {}),
            today=str(raw.get("today", "")),
        ))
    if errors:
        raise ConditionSetError(errors)
    assert isinstance(name, str) and isinstance(setter, str)
    return ConditionSet(name=name, setter=setter, case_types=case_types,
                        units=kinds["units"] or frozenset(),
                        people=kinds["people"] or frozenset(),
                        contact_on_failure=bool(body.get("contact_on_failure", False)),
                        conditions=tuple(conditions), examples=tuple(examples),
                        source=source, execute=bool(body.get("execute", False)),
                        recovery=recovery, case_number=case_number, version=version,
                        budgets=tuple(budgets))


def read_condition_files(directory: Path, fields_of: dict[str, set[str]],
                         ) -> tuple[dict[str, tuple[dict[str, Any], ConditionSet]],
                                    dict[str, list[str]]]:
    """Every file under `directory`, each on its own: the good ones by path (body, set),
    and the problems of the others by path. One broken file never hides the rest."""
    good: dict[str, tuple[dict[str, Any], ConditionSet]] = {}
    broken: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for path in sorted(directory.glob("*.toml")) if directory.is_dir() else []:
        where = str(path)
        try:
            body = loads_toml(path.read_text(encoding="utf-8"))
            cs = build_set(body, where, fields_of)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
            broken[where] = [f"{path}: not valid TOML: {exc}"]
            continue
        except ConditionSetError as exc:
            broken[where] = exc.errors
            continue
        if cs.name in names:
            broken[where] = [f"{path}: set name {cs.name!r} is also used by {names[cs.name]}"]
            continue
        names[cs.name] = where
        good[where] = (body, cs)
    return good, broken


def load_condition_sets(directory: Path, fields_of: dict[str, set[str]]) -> ConditionBook:
    """All files, or a ConditionSetError naming every problem (for callers that need all)."""
    good, broken = read_condition_files(directory, fields_of)
    if broken:
        raise ConditionSetError([e for errs in broken.values() for e in errs])
    book = ConditionBook()
    for _, cs in good.values():
        book.add(cs)
    return book
