"""Request forms as files (drop folders, mail attachments): TOML, JSON or YAML.

The keys are the same as in a mail body (field names or labels, in English or Japanese,
plus `type` and `title`), so one set of validation rules serves every channel. Files are
decoded like mail (UTF-8, ISO-2022-JP, Shift_JIS) before parsing, because forms saved by
Windows tools in Japan are often not UTF-8.
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

FORM_SUFFIXES = {".toml": "toml", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}
TITLE_KEYS = frozenset({"title", "subject", "件名", "表題"})


class FormFileError(Exception):
    """The file is not a readable form; the message says why in plain words."""


@dataclass(frozen=True)
class FormFile:
    title: str
    form: RawForm


def _text(value: Any) -> str:
    """One field value as the text a person would have typed in a mail body."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime.datetime):
        return value.date().isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, float):
        return format(Decimal(str(value)), "f")
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, dict):
        raise FormFileError("a field value must be a single value or a list, not a table")
    return str(value).strip()


def parse_form_file(data: bytes, suffix: str, name: str = "form") -> FormFile:
    fmt = FORM_SUFFIXES.get(suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(FORM_SUFFIXES))
        raise FormFileError(f"{name}: not a form file (use one of {known})")
    text = decode_bytes(data).removeprefix("\ufeff")
    try:
        if fmt == "toml":
            parsed: Any = tomllib.loads(text)
        elif fmt == "json":
            parsed = json.loads(text)
        else:
            parsed = yaml.safe_load(text)
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
    if not isinstance(parsed, dict):
        raise FormFileError(f"{name}: the form must be a table of 'field = value' entries")
    type_key: str | None = None
    title = ""
    values: dict[str, str] = {}
    for raw_key, raw_value in parsed.items():
        key = normalise_key(str(raw_key))
        try:
            value = _text(raw_value) if raw_value is not None else ""
        except FormFileError as exc:
            raise FormFileError(f"{name}: {raw_key}: {exc}") from None
        if key in TYPE_KEYS:
            type_key = value or None
        elif key in TITLE_KEYS:
            title = value
        elif value:
            values[key] = value
    return FormFile(title, RawForm(type_key=type_key, values=values, line_of={},
                                   unknown_lines=[]))
