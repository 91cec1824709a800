"""Factor names and how typed values become what conditions read."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from daemon.conditions.factors import (
    FactorError,
    check_name,
    describe,
    from_json,
    parse_value,
    to_json,
)


@pytest.mark.parametrize(("raw", "value"), [
    ("0.35", 0.35),
    ("-2", -2.0),
    ("1,900,000", 1900000.0),
    (" 42 ", 42.0),
    ("true", True),
    ("false", False),
    ("2026-12-31", dt.date(2026, 12, 31)),
    ("high", "high"),
    ("'2026-12-31'", "2026-12-31"),
    ('"true"', "true"),
    ("1e5", "1e5"),  # not a number form we accept: kept as text, not silently 100000
    ("nan", "nan"),
])
def test_values(raw: str, value: Any) -> None:
    got = parse_value(raw)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(("raw", "message"), [
    ("", "cannot be empty"),
    ("2026-02-30", "looks like a date but is not one"),
    ("9" * 400, "too large"),
    ("x" * 501, "at most 500"),
])
def test_bad_values(raw: str, message: str) -> None:
    with pytest.raises(FactorError, match=message):
        parse_value(raw)


@pytest.mark.parametrize("name", ["Rate", "1rate", "rate-2", "", "a" * 101, "factor.rate"])
def test_bad_names(name: str) -> None:
    with pytest.raises(FactorError, match="lower-case letters, digits and _"):
        check_name(name)


def test_good_names() -> None:
    for name in ("interest_rate", "r", "fx_usd_jpy2"):
        check_name(name)


def test_dates_are_stored_tagged_so_they_never_read_back_as_text() -> None:
    day = dt.date(2026, 12, 31)
    assert to_json(day) == {"date": "2026-12-31"}
    assert from_json(to_json(day)) == day
    assert from_json("2026-12-31") == "2026-12-31"
    assert [describe(v) for v in (0.35, 2000000.0, True, {"date": "2026-12-31"}, "x")] == [
        "0.35", "2000000", "true", "2026-12-31 (date)", "'x'"]
