"""External values conditions read as ``factor.NAME`` (SPEC 6), e.g. an interest rate.

A factor is set by a command (`ringi factor set`) or by other code, never by a condition
file, and every change is audited with the text given, the old value and the new one.

Values are parsed from text, simply and predictably:

- a number (``0.35``, ``-2``, ``1,900,000``) becomes a float: money in conditions is a CEL
  double, and ints meet doubles by promotion, so one numeric type is enough;
- ``true`` / ``false`` become booleans;
- a date ``YYYY-MM-DD`` becomes a ``datetime.date`` (stored as ``{"date": "YYYY-MM-DD"}`` in
  the JSON column, so it can never be confused with text);
- anything else is kept as text. Text that would parse as one of the above can be forced to
  stay text by quoting it: ``'"2026-12-31"'``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from daemon.audit.trail import AuditTrail
from daemon.clock import Clock
from daemon.store.condition_models import Factor

NAME = re.compile(r"[a-z][a-z0-9_]*")
NAME_MAX = 100
VALUE_MAX = 500
_NUMBER = re.compile(r"[+-]?(?:\d+|\d{1,3}(?:,\d{3})+)(?:\.\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class FactorError(Exception):
    """A factor name or value that cannot be used; the message says why, in plain words."""


def check_name(name: str) -> None:
    if not NAME.fullmatch(name) or len(name) > NAME_MAX:
        raise FactorError(
            f"factor name {name!r} is not allowed: use lower-case letters, digits and _, "
            f"starting with a letter (e.g. interest_rate), at most {NAME_MAX} characters")


def parse_value(raw: str) -> Any:
    """Text as typed on the command line -> float, bool, datetime.date or str (see above)."""
    text = raw.strip()
    if not text:
        raise FactorError("a factor value cannot be empty (use `ringi factor unset`)")
    if len(text) > VALUE_MAX:
        raise FactorError(f"a factor value is at most {VALUE_MAX} characters")
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if _NUMBER.fullmatch(text):
        number = float(text.replace(",", ""))
        if not math.isfinite(number):
            raise FactorError(f"{text!r} is too large a number")
        return number
    if text in ("true", "false"):
        return text == "true"
    if _DATE.fullmatch(text):
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise FactorError(f"{text!r} looks like a date but is not one") from None
    return text


def to_json(value: Any) -> Any:
    return {"date": value.isoformat()} if isinstance(value, dt.date) else value


def from_json(stored: Any) -> Any:
    if isinstance(stored, dict) and set(stored) == {"date"}:
        return dt.date.fromisoformat(str(stored["date"]))
    return stored


class Factors:
    def __init__(self, clock: Clock, audit: AuditTrail) -> None:
        self.clock = clock
        self.audit = audit

    def all(self, s: Session) -> dict[str, Any]:
        """Every factor by name, as Python values (float, bool, datetime.date, str)."""
        rows = s.execute(select(Factor.name, Factor.value).order_by(Factor.name)).all()
        return {name: from_json(value) for name, value in rows}

    def rows(self, s: Session) -> list[Factor]:
        return list(s.scalars(select(Factor).order_by(Factor.name)))

    def _current(self, s: Session, name: str) -> tuple[bool, Any]:
        row = s.execute(select(Factor.value).where(Factor.name == name)).first()
        return (False, None) if row is None else (True, row.value)

    def set(self, s: Session, name: str, raw_value: str, actor: str | None,
            source: str) -> Any:
        """Set (or replace) a factor in the caller's transaction; returns the parsed value."""
        check_name(name)
        value = parse_value(raw_value)
        self.audit.lock(s)  # before the factor row: the one lock order every audited writer uses
        exists, old = self._current(s, name)
        now = self.clock.now()
        if exists:
            s.execute(update(Factor).where(Factor.name == name)
                      .values(value=to_json(value), updated_at=now, updated_by=actor)
                      .execution_options(synchronize_session=False))
        else:
            s.add(Factor(name=name, value=to_json(value), updated_at=now, updated_by=actor))
            s.flush()
        self.audit.append(s, "factor set", actor, f"factor {name}", {
            "name": name, "text": raw_value, "old": old, "new": to_json(value),
            "source": source})
        return value

    def unset(self, s: Session, name: str, actor: str | None, source: str) -> bool:
        """Remove a factor; False (and nothing audited) if it was not set."""
        check_name(name)
        self.audit.lock(s)
        exists, old = self._current(s, name)
        if not exists:
            return False
        s.execute(delete(Factor).where(Factor.name == name)
                  .execution_options(synchronize_session=False))
        self.audit.append(s, "factor unset", actor, f"factor {name}",
                          {"name": name, "old": old, "new": None, "source": source})
        return True


def describe(value: Any) -> str:
    """A value (stored or parsed) as `ringi factor list` prints it."""
    v = from_json(value)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    if isinstance(v, dt.date):
        return f"{v.isoformat()} (date)"
    return repr(v)
