"""The parts of a condition set that say what happens beyond pass/fail (SPEC 6).

Recovery paths in the setter's order, reservation rules, the proxy, a hold
(reconsideration) range for lower approvers' failures, and co-approvals. Parsed apart from
the conditions themselves so each stays small; errors come back as lines, never raised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from daemon.conditions.expr import Compiled, ExprError, check_fields, compile_expr

PATHS = ("reserve", "revise", "proxy", "hold")
RESERVATION_KEYS = {"condition", "when", "set", "note"}


@dataclass(frozen=True)
class Reservation:
    """Approve with modified content: when `condition` fails and `when` holds, the fields in
    `changes` take the values of their expressions (e.g. amount capped at the limit)."""

    condition: str
    when: Compiled | None
    changes: tuple[tuple[str, Compiled], ...]
    note: str


@dataclass(frozen=True)
class Recovery:
    on_failure: tuple[str, ...] = ()
    reservations: tuple[Reservation, ...] = ()
    revise_wait_hours: float = 24.0
    proxy: str | None = None
    hold_range: Compiled | None = None
    also_required: tuple[str, ...] = ()


def _expr(text: Any, where: str, known: set[str], errors: list[str]) -> Compiled | None:
    if not isinstance(text, str) or not text.strip():
        errors.append(f"{where}: must be an expression in quotes")
        return None
    try:
        compiled = compile_expr(text)
    except ExprError as exc:
        errors.append(f"{where}: does not compile: {exc}")
        return None
    errors.extend(f"{where}: {p}" for p in check_fields(compiled, known))
    return compiled


def _ids(value: Any, where: str, errors: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        errors.append(f"{where}: must be a list of person ids")
        return ()
    return tuple(value)


def parse_recovery(body: dict[str, Any], source: str, known: set[str],
                   condition_names: set[str]) -> tuple[Recovery, list[str]]:
    errors: list[str] = []
    order = body.get("on_failure", [])
    if not isinstance(order, list) or any(p not in PATHS for p in order):
        errors.append(f"{source}: on_failure: a list of {', '.join(PATHS)} (in the order "
                      "to try them; rejection comes after)")
        order = []
    if len(set(order)) != len(order):
        errors.append(f"{source}: on_failure: each path may appear once")
    reservations = []
    for i, raw in enumerate(body.get("reservations", []), 1):
        where = f"{source}: reservation {i}"
        if not isinstance(raw, dict):
            errors.append(f"{where}: must be a table")
            continue
        for key in sorted(set(raw) - RESERVATION_KEYS):
            errors.append(f"{where}: unknown key {key!r}")
        cond = raw.get("condition")
        if cond not in condition_names:
            errors.append(f"{where}: condition = must name one of this set's conditions "
                          f"({', '.join(sorted(condition_names))})")
        when = _expr(raw["when"], f"{where}: when", known, errors) if "when" in raw else None
        changes = raw.get("set")
        if not isinstance(changes, dict) or not changes:
            errors.append(f"{where}: set = {{ field = \"expression\" }} is required")
            changes = {}
        compiled = []
        for fname, text in changes.items():
            if known and fname not in known:
                errors.append(f"{where}: set: unknown field {fname!r}")
            c = _expr(text, f"{where}: set.{fname}", known, errors)
            if c is not None:
                compiled.append((str(fname), c))
        reservations.append(Reservation(str(cond), when, tuple(compiled),
                                        str(raw.get("note", ""))))
    if "reserve" in order and not reservations:
        errors.append(f"{source}: on_failure has \"reserve\" but no [[reservations]]")
    proxy = body.get("proxy")
    if proxy is not None and (not isinstance(proxy, str) or not proxy):
        errors.append(f"{source}: proxy = \"person-id\" (who may approve in the setter's place)")
        proxy = None
    if "proxy" in order and proxy is None:
        errors.append(f"{source}: on_failure has \"proxy\" but no proxy = \"person-id\"")
    wait = body.get("revise_wait_hours", 24)
    if not isinstance(wait, (int, float)) or isinstance(wait, bool) \
            or not math.isfinite(wait) or not 0 < wait <= 24 * 366:
        errors.append(f"{source}: revise_wait_hours must be a number of hours, more than 0 "
                      "and at most a year")
        wait = 24
    hold = _expr(body["hold_range"], f"{source}: hold_range", known, errors) \
        if "hold_range" in body else None
    also = _ids(body["also_required"], f"{source}: also_required", errors) \
        if "also_required" in body else ()
    return Recovery(tuple(order), tuple(reservations), float(wait), proxy, hold, also), errors


RECOVERY_KEYS = {"on_failure", "reservations", "revise_wait_hours", "proxy", "hold_range",
                 "also_required"}
