"""Period budgets a condition set declares and approvals consume (SPEC 6).

"An approved ¥1.9M reduces the remaining monthly budget": each ``[[budgets]]`` table of a
condition set names a limit, a period (month, year or total) and the case field whose amount
is consumed. One row per (set, budget, period) holds what was consumed.

Consumption is ONE conditional UPDATE (``consumed + amount <= limit``): whichever of two
concurrent approvals commits first wins and the other finds the condition false, on SQLite
and on a PostgreSQL shared by several daemons alike; nothing is read first and decided in
Python. Each change appends an audit entry in the same transaction. Amounts are Decimal;
on SQLite, which keeps NUMERIC as a float, sums are rounded to cents in SQL so a budget
filled exactly to its limit compares equal (exact up to about 10^13).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, Numeric, func, select, update
from sqlalchemy.orm import Session

from daemon.audit.trail import AuditTrail
from daemon.clock import Clock
from daemon.store.condition_models import Budget
from daemon.store.db import insert_if_absent, rowcount

PERIODS = ("month", "year", "total")
BUDGET_KEYS = {"name", "limit", "period", "field"}
NAME = re.compile(r"[a-z][a-z0-9_]*")
FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CENT = Decimal("0.01")
MAX_AMOUNT = Decimal(10) ** 18  # Numeric(20, 2): 18 digits before the point


class BudgetError(Exception):
    """An amount that cannot be consumed (negative, not a number, more than two decimals)."""


@dataclass(frozen=True)
class BudgetSpec:
    name: str
    limit: Decimal
    period: str  # "month" | "year" | "total"
    field: str  # the case field whose amount is consumed, e.g. "amount"

    def __post_init__(self) -> None:
        # Cents, as the column keeps them, so audit entries and comparisons read alike.
        object.__setattr__(self, "limit", Decimal(self.limit).quantize(CENT))


@dataclass(frozen=True)
class BudgetLine:
    """One row of `ringi budget show`."""

    set_name: str
    budget: str
    period: str
    limit: Decimal
    consumed: Decimal
    remaining: Decimal


def parse_amount(value: Any) -> Decimal:
    """A money amount from a case field or a TOML value: 1900000, "1,900,000", "12.50"."""
    shown = _shown(value)
    if isinstance(value, bool) or value is None:
        raise BudgetError(f"{shown} is not an amount")
    if isinstance(value, int) and value.bit_length() > 64:
        raise BudgetError(f"{shown} is too large")
    text = repr(value) if isinstance(value, float) else str(value).strip().replace(",", "")
    if len(text) > 40:  # 18 digits, a point, 2 decimals, and room for zeros and a sign
        raise BudgetError(f"{shown} is too long to be an amount")
    try:
        amount = Decimal(text)
        if not amount.is_finite():
            raise BudgetError(f"{shown} is not an amount")
        if abs(amount) >= MAX_AMOUNT:
            raise BudgetError(f"{shown} is too large")
        if amount != amount.quantize(CENT):
            raise BudgetError(f"{shown} has more than two decimal places")
    except (InvalidOperation, ArithmeticError):  # "1e999999999" overflows quantize
        raise BudgetError(f"{shown} is not an amount") from None
    return amount.quantize(CENT)


def _shown(value: Any) -> str:
    """The value as quoted in a message, one short line however long it is."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"a number of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def amount_of(spec: BudgetSpec, fields: dict[str, Any]) -> Decimal | None:
    """The amount a case consumes from `spec`; None when the case leaves the field unset."""
    value = fields.get(spec.field)
    if value is None or value == "":
        return None
    return parse_amount(value)


def parse_budget_specs(raw: Any, where: str, known_fields: set[str] | None = None,
                       ) -> tuple[list[BudgetSpec], list[str]]:
    """``[[budgets]]`` tables -> (specs, error lines). Missing budgets are no budgets."""
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        return [], [f"{where}: budgets: must be [[budgets]] tables with name, limit, period "
                    "and field"]
    specs: list[BudgetSpec] = []
    errors: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(raw, 1):
        label = f"{where}: budget {item.get('name', i) if isinstance(item, dict) else i}"
        if not isinstance(item, dict):
            errors.append(f"{label}: must be a table with name, limit, period and field")
            continue
        before = len(errors)
        errors.extend(f"{label}: unknown key {k!r}" for k in sorted(set(item) - BUDGET_KEYS))
        name, period, field = item.get("name"), item.get("period"), item.get("field")
        if not isinstance(name, str) or not NAME.fullmatch(name) or len(name) > 100:
            errors.append(f"{label}: name = \"...\" is required: lower-case letters, digits "
                          "and _, starting with a letter (e.g. monthly)")
        elif name in seen:
            errors.append(f"{label}: a second budget named {name!r} in the same set")
        else:
            seen.add(name)
        limit: Decimal | None = None
        try:
            limit = parse_amount(item.get("limit"))
        except BudgetError as exc:
            errors.append(f"{label}: limit must be an amount such as 2000000 ({exc})")
        if limit is not None and limit <= 0:
            errors.append(f"{label}: limit must be more than 0")
        if period not in PERIODS:
            errors.append(f"{label}: period must be \"month\", \"year\" or \"total\", "
                          f"not {period!r}")
        if not isinstance(field, str) or not FIELD.fullmatch(field):
            errors.append(f"{label}: field = \"...\" names the case field whose amount is "
                          "consumed (e.g. amount)")
        elif known_fields is not None and field not in known_fields:
            errors.append(f"{label}: unknown case field {field!r}")
        if len(errors) == before:
            assert limit is not None
            specs.append(BudgetSpec(str(name), limit, str(period), str(field)))
    return specs, errors


def period_key(period: str, now: datetime) -> str:
    """The period `now` falls in: "2026-11" (month), "2026" (year), "total"."""
    if period == "month":
        return f"{now.year:04d}-{now.month:02d}"
    if period == "year":
        return f"{now.year:04d}"
    if period == "total":
        return "total"
    raise ValueError(f"unknown budget period {period!r}")


def previous_key(key: str) -> str | None:
    """The period before `key` ("2026-01" -> "2025-12"); None for "total"."""
    if key == "total":
        return None
    if len(key) == 4:
        return f"{int(key) - 1:04d}"
    year, month = int(key[:4]), int(key[5:])
    return f"{year - 1:04d}-12" if month == 1 else f"{year:04d}-{month - 1:02d}"


def _kind(key: str) -> str:
    return "total" if key == "total" else "year" if len(key) == 4 else "month"


def _cents(expr: ColumnElement[Any]) -> ColumnElement[Decimal]:
    """Round in SQL: SQLite sums NUMERIC as floats (0.1 + 0.2 must equal 0.3 here)."""
    return func.round(expr, 2, type_=Numeric(20, 2))


class Budgets:
    """Every change takes the audit head lock first (see daemon/audit/trail.py)."""

    def __init__(self, clock: Clock, audit: AuditTrail, tz: tzinfo = UTC) -> None:
        self.clock = clock
        self.audit = audit
        self.tz = tz  # periods turn at midnight here

    def key(self, spec: BudgetSpec, when: datetime | None = None) -> str:
        return period_key(spec.period, (when or self.clock.now()).astimezone(self.tz))

    @staticmethod
    def _subject(set_name: str, spec: BudgetSpec) -> str:
        return f"budget {set_name}/{spec.name}"

    def _where(self, set_name: str, spec: BudgetSpec, key: str) -> list[ColumnElement[bool]]:
        return [Budget.set_name == set_name, Budget.budget == spec.name, Budget.period == key]

    def _consumed(self, s: Session, set_name: str, spec: BudgetSpec, key: str) -> Decimal | None:
        value = s.execute(select(Budget.consumed).where(*self._where(set_name, spec, key))
                          ).scalar()
        return None if value is None else Decimal(value)

    def remaining(self, s: Session, set_name: str, spec: BudgetSpec) -> Decimal:
        """What is left this period; the full limit before anything is consumed. Never writes."""
        consumed = self._consumed(s, set_name, spec, self.key(spec))
        return spec.limit - (consumed or Decimal(0))

    def _open(self, s: Session, set_name: str, spec: BudgetSpec, key: str) -> tuple[int, bool]:
        """The period's row id, creating it (race-free) and auditing the reset if new."""
        created = insert_if_absent(s, Budget, {
            "set_name": set_name, "budget": spec.name, "period": key,
            "limit_amount": spec.limit, "consumed": Decimal(0), "created_at": self.clock.now(),
        }, ["set_name", "budget", "period"])
        if created:
            prev = previous_key(key)
            before = None if prev is None else self._consumed(s, set_name, spec, prev)
            self.audit.append(
                s, "budget opened" if prev is None else "budget reset", None,
                self._subject(set_name, spec),
                {"set": set_name, "budget": spec.name, "period": key, "limit": spec.limit,
                 "previous_period": prev, "previous_consumed": before})
        bid = s.execute(select(Budget.id).where(*self._where(set_name, spec, key))).scalar_one()
        return int(bid), created

    def _after(self, s: Session, bid: int) -> Decimal:
        return Decimal(s.execute(select(Budget.consumed).where(Budget.id == bid)).scalar_one())

    def _record(self, s: Session, kind: str, set_name: str, spec: BudgetSpec, key: str,
                amount: Decimal, consumed: Decimal, case_number: str, actor: str | None,
                **extra: Any) -> None:
        self.audit.append(s, kind, actor, self._subject(set_name, spec), {
            "set": set_name, "budget": spec.name, "period": key, "case": case_number,
            "amount": amount, "limit": spec.limit, "consumed": consumed,
            "remaining": spec.limit - consumed, **extra})

    @staticmethod
    def _positive(amount: Decimal) -> Decimal:
        value = parse_amount(amount)
        if value < 0:
            raise BudgetError(f"a negative amount ({value}) cannot be consumed or released")
        return value

    def consume(self, s: Session, set_name: str, spec: BudgetSpec, amount: Decimal,
                case_number: str, actor: str | None) -> bool:
        """Take `amount` if it fits in what is left this period; False if not.

        A refusal consumes and audits nothing (the period's row may still be opened, with its
        `budget reset` entry). The spec's limit is the one in force: a limit raised
        mid-period applies at once.
        """
        amt = self._positive(amount)
        self.audit.lock(s)
        key = self.key(spec)
        bid, _ = self._open(s, set_name, spec, key)
        won = rowcount(s.execute(
            update(Budget)
            .where(Budget.id == bid, _cents(Budget.consumed + amt) <= spec.limit)
            .values(consumed=_cents(Budget.consumed + amt), limit_amount=spec.limit)
            .execution_options(synchronize_session=False)
        ))
        if won != 1:
            return False
        self._record(s, "budget consumed", set_name, spec, key, amt, self._after(s, bid),
                     case_number, actor)
        return True

    def charge(self, s: Session, set_name: str, spec: BudgetSpec, amount: Decimal,
               case_number: str, actor: str | None) -> Decimal:
        """Consume without the limit check (a human approver decided); returns what remains.

        Going over the limit is audited as such, with the amount over.
        """
        amt = self._positive(amount)
        self.audit.lock(s)
        key = self.key(spec)
        bid, _ = self._open(s, set_name, spec, key)
        s.execute(update(Budget).where(Budget.id == bid)
                  .values(consumed=_cents(Budget.consumed + amt), limit_amount=spec.limit)
                  .execution_options(synchronize_session=False))
        consumed = self._after(s, bid)
        over = consumed > spec.limit
        self._record(s, "budget charged over limit" if over else "budget consumed", set_name,
                     spec, key, amt, consumed, case_number, actor,
                     **({"over_by": consumed - spec.limit} if over else {}))
        return spec.limit - consumed

    def release(self, s: Session, set_name: str, spec: BudgetSpec, amount: Decimal,
                case_number: str, actor: str | None, when: datetime | None = None) -> Decimal:
        """Give back an amount (e.g. a cancelled case) to the period it was consumed in.

        `when` is when it was consumed (default now). Never takes `consumed` below zero;
        returns what was actually given back (0, and nothing audited, if nothing was there).
        """
        amt = self._positive(amount)
        self.audit.lock(s)
        key = self.key(spec, when)
        row = s.execute(select(Budget.id, Budget.consumed)
                        .where(*self._where(set_name, spec, key)).with_for_update()).first()
        if row is None or Decimal(row.consumed) <= 0 or amt == 0:
            return Decimal("0.00")
        given = min(amt, Decimal(row.consumed))
        s.execute(update(Budget).where(Budget.id == row.id)
                  .values(consumed=_cents(Budget.consumed - given))
                  .execution_options(synchronize_session=False))
        self._record(s, "budget released", set_name, spec, key, given,
                     self._after(s, row.id), case_number, actor, requested=amt)
        return given

    def roll(self, s: Session, specs_by_set: dict[str, list[BudgetSpec]]) -> int:
        """Open the current period of every budget (audited as a reset); how many were opened.

        Also brings each current row's limit to the spec's (audited), so `budget show` is
        current after a condition set changes. Writes nothing when nothing is due.
        """
        due = []
        for set_name, specs in sorted(specs_by_set.items()):
            for spec in specs:
                if self._limit(s, set_name, spec, self.key(spec)) != spec.limit:
                    due.append((set_name, spec))
        if not due:
            return 0
        self.audit.lock(s)
        opened = 0
        for set_name, spec in due:
            key = self.key(spec)
            bid, created = self._open(s, set_name, spec, key)
            opened += created
            old = self._limit(s, set_name, spec, key)  # read again: now under the lock
            if not created and old != spec.limit:
                s.execute(update(Budget).where(Budget.id == bid)
                          .values(limit_amount=spec.limit)
                          .execution_options(synchronize_session=False))
                self.audit.append(s, "budget limit changed", None,
                                  self._subject(set_name, spec),
                                  {"set": set_name, "budget": spec.name, "period": key,
                                   "old": old, "new": spec.limit})
        return opened

    def _limit(self, s: Session, set_name: str, spec: BudgetSpec, key: str) -> Decimal | None:
        value = s.execute(select(Budget.limit_amount)
                          .where(*self._where(set_name, spec, key))).scalar()
        return None if value is None else Decimal(value)

    def show(self, s: Session, all_periods: bool = False) -> list[BudgetLine]:
        """Each budget's current period (or every period kept), by set and budget."""
        now = self.clock.now().astimezone(self.tz)
        lines = []
        for b in s.scalars(select(Budget).order_by(Budget.set_name, Budget.budget,
                                                   Budget.period)):
            if all_periods or b.period == period_key(_kind(b.period), now):
                limit, consumed = Decimal(b.limit_amount), Decimal(b.consumed)
                lines.append(BudgetLine(b.set_name, b.budget, b.period, limit, consumed,
                                        limit - consumed))
        return lines
