"""Small helpers shared by the directory validators (ids, type names, key hints)."""

from __future__ import annotations

import datetime
import difflib
import re

ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ID_RULE = "1-64 letters, digits, '.', '_' or '-' and start with a letter or digit"


def type_name(value: object) -> str:
    """How a parsed value is named in messages: "a string", "a table", ..."""
    return {
        bool: "a boolean", int: "an integer", float: "a number", str: "a string",
        list: "a list", dict: "a table", type(None): "null",
        datetime.date: "a date", datetime.datetime: "a date-time", datetime.time: "a time",
    }.get(type(value), type(value).__name__)  # fmt: skip


def hint(key: object, allowed: tuple[str, ...]) -> str:
    """" (did you mean 'x'?)" for a near miss, else the allowed keys."""
    close = difflib.get_close_matches(str(key), allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(allowed)})"
