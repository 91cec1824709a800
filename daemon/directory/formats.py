"""Per-format readers for organisation directory files.

Each reader turns text into plain Python data (dicts, lists, scalars) plus a
*line map*: ``{path: line}`` where a path is e.g. ``("people", 3, "unit")``.
The validator in :mod:`daemon.directory.loader` is format-agnostic and only
ever asks "which line is this path on?", so every format gets the same
line-accurate error messages without the validator knowing about TOML
headers, YAML marks or CSV rows.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field

import yaml

from daemon.parsing.numbers import MAX_DIGITS, loads_toml
from daemon.parsing.safeyaml import BoundedLoader, YamlTooComplex, compose_bounded

Path = tuple[str | int, ...]
LineMap = dict[Path, int]

SECTIONS = ("units", "positions", "people", "roles", "relations")


class SyntaxProblem(Exception):
    """The text could not be parsed at all; ``line`` is None when the parser gave none."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass
class ParsedFile:
    """Parsed data, where each path lives, and non-fatal problems the parser noticed."""

    data: object
    lines: LineMap = field(default_factory=dict)
    errors: list[tuple[int | None, str]] = field(default_factory=list)


def locate(lines: LineMap, path: Path) -> int | None:
    """Most specific known line for ``path``: fall back to the enclosing entry/section."""
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None


# --------------------------------------------------------------------- TOML

_TOML_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END = re.compile(r"\s*\(at end of document\)\s*$")
_TOML_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]#]+?)\s*\]\]?\s*(?:#.*)?$")
_TOML_KEY = re.compile(r"""^\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*=""")


def read_toml(text: str) -> ParsedFile:
    """tomllib gives no positions, so entries are mapped to their ``[[section]]`` headers."""
    try:
        data = loads_toml(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        if m := _TOML_POS.search(message):
            line: int | None = int(m.group(1))
            message = f"{message[: m.start()]} (column {m.group(2)})"
        elif m := _TOML_END.search(message):
            line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
            message = f"{message[: m.start()]} (at end of file)"
        else:
            line = None
        raise SyntaxProblem(line, f"TOML syntax error: {message}") from None
    return ParsedFile(data, _toml_lines(text, data))


def _toml_lines(text: str, data: dict[str, object]) -> LineMap:
    # (line, is_array_header, name) for every table header, plus top-level keys.
    headers: list[tuple[int, bool, str]] = []
    keys_by_line: dict[int, str] = {}
    in_multiline: str | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if in_multiline is not None:
            if raw.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        if m := _TOML_HEADER.match(raw):
            name = m.group(2).strip().strip("\"'")
            headers.append((lineno, m.group(1) == "[[", name))
        elif m := _TOML_KEY.match(raw):
            keys_by_line[lineno] = next(g for g in m.groups() if g is not None)
        for quote in ('"""', "'''"):
            if raw.count(quote) % 2 == 1:
                in_multiline = quote
                break

    lines: LineMap = {}
    first_header = headers[0][0] if headers else None
    for lineno, key in keys_by_line.items():
        if first_header is None or lineno < first_header:
            lines.setdefault((key,), lineno)
    for lineno, _is_array, name in headers:
        lines.setdefault((name,), lineno)
    for section in SECTIONS:
        blocks = [(i, h[0]) for i, h in enumerate(headers) if h[1] and h[2] == section]
        entries = data.get(section)
        if not isinstance(entries, list) or len(blocks) != len(entries):
            continue  # inline-array form: entries fall back to the section's line
        for entry_index, (header_index, start) in enumerate(blocks):
            lines[(section, entry_index)] = start
            end = headers[header_index + 1][0] if header_index + 1 < len(headers) else 1 << 60
            for lineno, key in keys_by_line.items():
                if start < lineno < end:
                    lines.setdefault((section, entry_index, key), lineno)
    return lines


# --------------------------------------------------------------------- YAML


class _YamlLoader(BoundedLoader):
    """Bounded like request forms (nesting, aliases, alias growth). Dates stay strings:
    the validator parses them, so a bad date gets a line, not a crash."""


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_YamlLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def read_yaml(text: str) -> ParsedFile:
    """Compose once and construct from the same nodes, so data and marks always agree."""
    try:
        node, data = compose_bounded(text, _YamlLoader)
    except YamlTooComplex as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise SyntaxProblem(line, f"YAML refused: {exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise SyntaxProblem(line, f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise SyntaxProblem(None, f"YAML error: {exc}") from None
    parsed = ParsedFile(data)
    if node is not None:
        _yaml_walk(node, (), parsed, set())
    return parsed


def _yaml_walk(node: yaml.Node, path: Path, parsed: ParsedFile, active: set[int]) -> None:
    if id(node) in active:  # recursive alias: the data is cyclic, stop here
        return
    parsed.lines.setdefault(path, node.start_mark.line + 1)
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            key_line = key_node.start_mark.line + 1
            if key in seen and key != "<<":
                # PyYAML silently keeps the last value; a directory must not guess.
                parsed.errors.append((key_line, f"duplicate key {key!r}"))
            seen.add(key)
            parsed.lines.setdefault((*path, key), key_line)
            _yaml_walk(value_node, (*path, key), parsed, active)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _yaml_walk(item, (*path, index), parsed, active)
    active.discard(id(node))


# --------------------------------------------------------------------- JSON

_JSON_WS = re.compile(r"[ \t\n\r]*")
_JSON_SCALAR = re.compile(r"[^,\]\}\s]+")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def read_json(text: str) -> ParsedFile:
    """json gives no positions either; a tiny scanner over the (already valid) text finds them."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SyntaxProblem(
            exc.lineno, f"JSON syntax error: {exc.msg} (column {exc.colno})"
        ) from None
    except RecursionError:
        raise SyntaxProblem(None, "JSON nested too deeply") from None
    except ValueError as exc:  # json's answer to a number of 4,301+ digits
        why = str(exc)[:200]
        if "integer string conversion" in why:
            why = "a number has more than 4,300 digits"
        raise SyntaxProblem(None, f"JSON error: {why}") from None
    parsed = ParsedFile(data)
    _JsonScanner(text, parsed).value(0, ())
    return parsed


class _JsonScanner:
    """Walks valid JSON recording the line of every object key and array element."""

    def __init__(self, text: str, parsed: ParsedFile) -> None:
        self.text = text
        self.parsed = parsed
        self.newlines = [i for i, ch in enumerate(text) if ch == "\n"]

    def line(self, pos: int) -> int:
        return bisect.bisect_left(self.newlines, pos) + 1

    def skip(self, pos: int) -> int:
        match = _JSON_WS.match(self.text, pos)
        return match.end() if match else pos

    def value(self, pos: int, path: Path) -> int:
        text = self.text
        pos = self.skip(pos)
        self.parsed.lines.setdefault(path, self.line(pos))
        char = text[pos]
        if char == '"':
            return self._string(pos)[1]
        if char == "[":
            return self._array(pos + 1, path)
        if char == "{":
            return self._object(pos + 1, path)
        match = _JSON_SCALAR.match(text, pos)
        return match.end() if match else pos + 1

    def _string(self, pos: int) -> tuple[str, int]:
        match = _JSON_STRING.match(self.text, pos)
        if match is None:  # pragma: no cover - json.loads accepted the text
            raise SyntaxProblem(self.line(pos), "JSON string expected")
        return str(json.loads(match.group())), match.end()

    def _array(self, pos: int, path: Path) -> int:
        pos = self.skip(pos)
        if self.text[pos] == "]":
            return pos + 1
        index = 0
        while True:
            pos = self.skip(self.value(pos, (*path, index)))
            index += 1
            if self.text[pos] == "]":
                return pos + 1
            pos += 1  # ","

    def _object(self, pos: int, path: Path) -> int:
        pos = self.skip(pos)
        if self.text[pos] == "}":
            return pos + 1
        seen: set[str] = set()
        while True:
            pos = self.skip(pos)
            key, end = self._string(pos)
            key_line = self.line(pos)
            if key in seen:
                # json.loads silently keeps the last value; a directory must not guess.
                self.parsed.errors.append((key_line, f"duplicate key {key!r}"))
            seen.add(key)
            self.parsed.lines.setdefault((*path, key), key_line)
            pos = self.skip(self.skip(end) + 1)  # past ":"
            pos = self.skip(self.value(pos, (*path, key)))
            if self.text[pos] == "}":
                return pos + 1
            pos += 1  # ","


# ---------------------------------------------------------------------- CSV

CSV_COLUMNS = (
    "kind", "id", "name", "name_ja", "parent", "rank",
    "emails", "locale", "unit", "position", "active", "may_register", "may_approve",
    "role", "person", "approver", "relation_kind", "valid_from", "valid_to", "registered_by",
)  # fmt: skip
_CSV_KINDS = {
    "unit": "units", "position": "positions", "person": "people",
    "role": "roles", "relation": "relations",
}  # fmt: skip
# `kind` names the row type, so a relation's own kind has a column of its own.
_CSV_RENAME = {"relations": {"relation_kind": "kind"}}
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


def read_csv(text: str) -> ParsedFile:
    """One CSV with a ``kind`` column, because a people-only sheet cannot define the tree.

    Cells are converted to the JSON-like types where they parse (rank -> int,
    active -> bool, emails -> list); cells that do not parse are passed through
    as strings so the shared validator reports them with the row's line.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    sections: dict[str, list[object]] = {}
    parsed = ParsedFile(sections)
    header: list[str] | None = None
    header_line = 0
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise SyntaxProblem(reader.line_num, f"CSV syntax error: {exc}") from None
        if not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            continue
        if header is None:
            header, header_line = [cell.strip() for cell in row], start
            _check_csv_header(header, header_line, parsed)
            continue
        _csv_row(row, header, start, parsed, sections)
    if header is None:
        raise SyntaxProblem(None, "CSV file has no header row")
    return parsed


def _check_csv_header(header: list[str], line: int, parsed: ParsedFile) -> None:
    if "kind" not in header:
        columns = ", ".join(CSV_COLUMNS)
        raise SyntaxProblem(line, f"CSV header has no 'kind' column (columns: {columns})")
    for index, name in enumerate(header):
        if name not in CSV_COLUMNS:
            parsed.errors.append((line, f"unknown CSV column {name!r}"))
        elif name in header[:index]:
            parsed.errors.append((line, f"duplicate CSV column {name!r}"))


def _csv_row(
    row: list[str], header: list[str], line: int, parsed: ParsedFile,
    sections: dict[str, list[object]],
) -> None:  # fmt: skip
    if len(row) > len(header):
        parsed.errors.append((line, f"row has {len(row)} cells but the header has {len(header)}"))
    cells: dict[str, str] = {}
    for name, cell in zip(header, row, strict=False):
        if name in CSV_COLUMNS and name not in cells and cell.strip():
            cells[name] = cell.strip()
    kind = cells.pop("kind", "")
    section = _CSV_KINDS.get(kind)
    if section is None:
        expected = ", ".join(_CSV_KINDS)
        parsed.errors.append((line, f"unknown kind {kind!r} (expected one of {expected})"))
        return
    entry: dict[str, object] = {}
    rename = _CSV_RENAME.get(section, {})
    for name, cell in cells.items():
        entry[rename.get(name, name)] = _CSV_CONVERT.get(name, str)(cell)
    entries = sections.setdefault(section, [])
    parsed.lines[(section, len(entries))] = line
    entries.append(entry)


def _csv_int(cell: str) -> object:
    if len(cell.strip()) > MAX_DIGITS + 1:  # sign; the validator refuses the text itself
        return cell
    try:
        return int(cell)
    except ValueError:
        return cell


def _csv_bool(cell: str) -> object:
    lowered = cell.lower()
    return True if lowered in _TRUE else False if lowered in _FALSE else cell


def _csv_emails(cell: str) -> object:
    return [part.strip() for part in cell.split(";") if part.strip()]


_CSV_CONVERT: dict[str, Callable[[str], object]] = {
    "rank": _csv_int,
    "active": _csv_bool,
    "may_register": _csv_bool,
    "may_approve": _csv_bool,
    "emails": _csv_emails,
}
