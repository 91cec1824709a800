"""Request forms as files (drop folders, mail attachments): TOML, JSON or YAML.

The keys are the same as in a mail body (field names or labels, in English or Japanese,
plus `type` and `title`), so one set of validation rules serves every channel. Files are
decoded like mail (UTF-8, ISO-2022-JP, Shift_JIS) before parsing, because forms saved by
Windows tools in Japan are often not UTF-8.

Whatever the bytes, `parse_form_file` returns a form or raises `FormFileError`: a file
that could make a parser recurse, expand or raise something else must go to rejected/
once, with a reason, instead of being retried by a drop folder or a queue forever. So a
form is small (`MAX_FORM_BYTES`), flat (a table of single values or flat lists), YAML is
read with the bounded loader of `daemon.parsing.safeyaml` (nesting, aliases, alias
growth), and any other parser failure is turned into a `FormFileError` naming it.
"""

from __future__ import annotations

import datetime
import json
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import yaml

from daemon.cases.casetypes import normalise_key
from daemon.parsing.charsets import decode_bytes
from daemon.parsing.request import TYPE_KEYS, RawForm
from daemon.parsing.safeyaml import load_bounded
from daemon.security.text import first_control

FORM_SUFFIXES = {".toml": "toml", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}
TITLE_KEYS = frozenset({"title", "subject", "件名", "表題"})
MAX_FORM_BYTES = 256 * 1024  # a form is typed text; documents travel as attachments
MAX_NUMBER_DIGITS = 100  # no amount or count needs more; huge ints cost time to print


class FormFileError(Exception):
    """The file is not a readable form; the message says why in plain words."""


@dataclass(frozen=True)
class FormFile:
    title: str
    form: RawForm


_ALLOWED_CONTROLS = "\t\n\r"


def _clean(text: str, what: str) -> str:
    """Refuse characters that no person types and that break storage or mail later:
    control characters (NUL cannot even be stored in PostgreSQL) and lone surrogates."""
    ch = first_control(text, keep=_ALLOWED_CONTROLS)
    if ch is not None:
        raise FormFileError(f"{what} contains the character U+{ord(ch):04X} (a control "
                            "character or a broken encoding); remove it")
    return text


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        if value.bit_length() > MAX_NUMBER_DIGITS * 4:
            raise FormFileError(f"a number has more than {MAX_NUMBER_DIGITS} digits")
        return str(value)
    if isinstance(value, float):
        return format(Decimal(str(value)), "f") if abs(value) < 1e100 else str(value)
    if isinstance(value, datetime.datetime):
        return value.date().isoformat()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        raise FormFileError("a field value must be a single value or a list, not a table")
    raise FormFileError("a field value must be text, a number, a date or a list of those")


def _text(value: Any) -> str:
    """One field value as the text a person would have typed in a mail body."""
    if isinstance(value, list):
        if any(isinstance(v, list | tuple) for v in value):
            raise FormFileError("a field value must be a single value or a list, not a "
                                "list of lists")
        return ", ".join(_scalar(v) for v in value)
    return _scalar(value)


def _parse(text: str, fmt: str, name: str) -> Any:
    try:
        if fmt == "toml":
            return tomllib.loads(text)
        if fmt == "json":
            return json.loads(text)
        return load_bounded(text)
    except tomllib.TOMLDecodeError as exc:
        hint = ""
        if any(not ch.isascii() for ln in text.splitlines() for ch in ln.partition("=")[0]):
            hint = '; quote keys that are not plain ASCII, e.g. "金額" = 12000'
        raise FormFileError(f"{name}: not valid TOML: {exc}{hint}") from None
    except json.JSONDecodeError as exc:
        raise FormFileError(f"{name}: not valid JSON: {exc.msg} (line {exc.lineno})") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise FormFileError(f"{name}: not valid YAML{line}: {exc}") from None
    except RecursionError:
        raise FormFileError(f"{name}: not valid {fmt.upper()}: nested too deeply; a form is "
                            "a flat table of 'field = value' entries") from None
    except (ValueError, OverflowError) as exc:  # huge numbers, impossible dates
        why = str(exc)
        if "integer string conversion" in why:
            why = f"a number has more than {MAX_NUMBER_DIGITS} digits"
        raise FormFileError(f"{name}: not valid {fmt.upper()}: {why}") from None
    except Exception as exc:  # a parser's own bug must not make the input loop
        raise FormFileError(f"{name}: not a readable {fmt.upper()} file "
                            f"({type(exc).__name__})") from None


def parse_form_file(data: bytes, suffix: str, name: str = "form") -> FormFile:
    """The form in `data`, or FormFileError: never any other exception."""
    fmt = FORM_SUFFIXES.get(suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(FORM_SUFFIXES))
        raise FormFileError(f"{name}: not a form file (use one of {known})")
    if len(data) > MAX_FORM_BYTES:
        raise FormFileError(f"{name}: a form file may be at most {MAX_FORM_BYTES:,} bytes "
                            f"(this one has {len(data):,}); send documents as attachments "
                            "in a folder beside form.toml")
    text = decode_bytes(data).removeprefix("\ufeff")
    parsed = _parse(text, fmt, name)
    if not isinstance(parsed, dict):
        raise FormFileError(f"{name}: the form must be a table of 'field = value' entries")
    type_key: str | None = None
    title = ""
    values: dict[str, str] = {}
    for raw_key, raw_value in parsed.items():
        try:
            shown = _clean(_scalar(raw_key), "a field name") if raw_key is not None else ""
        except FormFileError as exc:
            raise FormFileError(f"{name}: {exc}") from None
        key = normalise_key(shown)
        try:
            value = _clean(_text(raw_value), "the value") if raw_value is not None else ""
        except FormFileError as exc:
            raise FormFileError(f"{name}: {shown}: {exc}") from None
        if key in TYPE_KEYS:
            type_key = value or None
        elif key in TITLE_KEYS:
            title = value
        elif value:
            values[key] = value
    return FormFile(title, RawForm(type_key=type_key, values=values, line_of={},
                                   unknown_lines=[]))
