"""Budget declarations, amounts and period keys (pure parts of daemon/conditions/budgets.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from daemon.conditions.budgets import (
    BudgetError,
    BudgetSpec,
    amount_of,
    parse_amount,
    parse_budget_specs,
    period_key,
    previous_key,
)

W = "rules/conditions/x.toml"


def test_period_keys() -> None:
    now = dt.datetime(2026, 1, 31, 23, 59, tzinfo=dt.UTC)
    assert period_key("month", now) == "2026-01"
    assert period_key("year", now) == "2026"
    assert period_key("total", now) == "total"
    with pytest.raises(ValueError):
        period_key("week", now)


def test_previous_keys_cross_year_boundaries() -> None:
    assert previous_key("2026-01") == "2025-12"
    assert previous_key("2026-11") == "2026-10"
    assert previous_key("2026") == "2025"
    assert previous_key("total") is None


def test_valid_specs() -> None:
    specs, errors = parse_budget_specs([
        {"name": "monthly", "limit": 2000000, "period": "month", "field": "amount"},
        {"name": "yearly", "limit": "15,000,000.50", "period": "year", "field": "amount"},
        {"name": "project", "limit": 1234.5, "period": "total", "field": "cost"},
    ], W)
    assert errors == []
    assert specs == [
        BudgetSpec("monthly", Decimal("2000000.00"), "month", "amount"),
        BudgetSpec("yearly", Decimal("15000000.50"), "year", "amount"),
        BudgetSpec("project", Decimal("1234.50"), "total", "cost"),
    ]


def test_no_budgets_is_not_an_error() -> None:
    assert parse_budget_specs(None, W) == ([], [])
    assert parse_budget_specs([], W) == ([], [])


@pytest.mark.parametrize(("raw", "expected"), [
    ({"name": "monthly", "limit": 1, "period": "month", "field": "amount", "cap": 1},
     "budget monthly: unknown key 'cap'"),
    ({"name": "Monthly", "limit": 1, "period": "month", "field": "amount"},
     "budget Monthly: name = \"...\" is required"),
    ({"limit": 1, "period": "month", "field": "amount"}, "budget 1: name"),
    ({"name": "m", "limit": "lots", "period": "month", "field": "amount"},
     "budget m: limit must be an amount such as 2000000"),
    ({"name": "m", "limit": 0, "period": "month", "field": "amount"},
     "budget m: limit must be more than 0"),
    ({"name": "m", "limit": 1.005, "period": "month", "field": "amount"},
     "more than two decimal places"),
    ({"name": "m", "limit": True, "period": "month", "field": "amount"}, "limit must be"),
    ({"name": "m", "limit": 1, "period": "week", "field": "amount"},
     "budget m: period must be \"month\", \"year\" or \"total\", not 'week'"),
    ({"name": "m", "limit": 1, "period": "month"}, "budget m: field = \"...\" names"),
    ({"name": "m", "limit": 1, "period": "month", "field": "price"},
     "budget m: unknown case field 'price'"),
    ("monthly", "budget 1: must be a table"),
])
def test_each_mistake_is_named(raw: Any, expected: str) -> None:
    specs, errors = parse_budget_specs([raw], W, known_fields={"amount"})
    assert specs == []
    assert len(errors) == 1 and errors[0].startswith(f"{W}: ")
    assert expected in errors[0]


def test_duplicate_names_and_non_list() -> None:
    spec = {"name": "m", "limit": 1, "period": "month", "field": "amount"}
    specs, errors = parse_budget_specs([spec, spec], W)
    assert len(specs) == 1 and errors == [f"{W}: budget m: a second budget named 'm' in the "
                                          "same set"]
    assert parse_budget_specs({"name": "m"}, W)[1] == [
        f"{W}: budgets: must be [[budgets]] tables with name, limit, period and field"]


def test_amounts() -> None:
    assert parse_amount("1,900,000") == Decimal("1900000.00")
    assert parse_amount(0.1) == Decimal("0.10")
    assert parse_amount(Decimal("12.5")) == Decimal("12.50")
    for bad in ("1.001", "abc", "NaN", "Infinity", True, None, "1e30"):
        with pytest.raises(BudgetError):
            parse_amount(bad)
    # Huge or extreme numbers: a short readable refusal, never Overflow or a 100 kB message.
    for huge, why in (("9" * 100_000, "is too long to be an amount"),
                      (10**4000, "a number of about 4000 digits is too large"),
                      ("1e999999999", "'1e999999999' is not an amount"),
                      ("1e-999999999", "has more than two decimal places"),
                      (2**64, "18446744073709551616 is too large"),
                      ("9" * 19, "is too large")):
        with pytest.raises(BudgetError) as info:
            parse_amount(huge)
        assert str(info.value).endswith(why) and len(str(info.value)) < 90, info.value
    spec = BudgetSpec("m", Decimal(10), "month", "amount")
    assert amount_of(spec, {"amount": "180000"}) == Decimal("180000.00")
    assert amount_of(spec, {"amount": ""}) is None and amount_of(spec, {}) is None
