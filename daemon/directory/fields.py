"""Small helpers shared by the directory validators (ids, type names, key hints)."""

from __future__ import annotations

import datetime
import difflib
import re
from collections.abc import Iterable, Mapping
from typing import TypeVar

ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ID_RULE = "1-64 letters, digits, '.', '_' or '-' and start with a letter or digit"
_T = TypeVar("_T")


def need(value: _T | None) -> _T:
    """Narrow a field the validator has already proven present."""
    if value is None:  # pragma: no cover - only reachable if validation has a bug
        raise AssertionError("validated field is missing")
    return value


def type_name(value: object) -> str:
    """How a parsed value is named in messages: "a string", "a table", ..."""
    return {
        bool: "a boolean", int: "an integer", float: "a number", str: "a string",
        list: "a list", dict: "a table", type(None): "null",
        datetime.date: "a date", datetime.datetime: "a date-time", datetime.time: "a time",
    }.get(type(value), type(value).__name__)  # fmt: skip


def hint(key: object, allowed: tuple[str, ...]) -> str:
    """Suggest the closest allowed key for a near miss, else list the allowed keys."""
    close = difflib.get_close_matches(str(key), allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(allowed)})"


def cycles(parents: Mapping[str, str], order: Iterable[str]) -> list[list[str]]:
    """Each cycle in a child -> parent map once, e.g. ``["hq", "eng", "hq"]``.

    Walks from every id in ``order`` (file order), so each cycle is reported once and
    starts at a stable place: the first id of the cycle reached.
    """
    found: list[list[str]] = []
    done: set[str] = set()
    for start in order:
        chain: list[str] = []
        current: str | None = start
        while current is not None and current not in done and current not in chain:
            chain.append(current)
            current = parents.get(current)
        if current is not None and current in chain:
            found.append([*chain[chain.index(current) :], current])
        done.update(chain)
    return found
