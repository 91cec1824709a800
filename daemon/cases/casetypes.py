"""Case types: the forms employees fill in, loaded from TOML data files.

Case types are data (``rules/casetypes/*.toml``) rather than code so that the people who
own the approval process can add or change a form without a release.  Loading is strict
and reports every problem at once, with file and line, because a mistake in a form
definition otherwise only surfaces when an employee's request bounces.
"""

from __future__ import annotations

import pathlib
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

FieldKind = Literal["money", "integer", "date", "text", "choice", "list"]
_KINDS: dict[str, FieldKind] = {kind: kind for kind in get_args(FieldKind)}

# Normalised keys that name the case type on a "Type: travel" line.  Kept here (and
# re-exported by daemon.parsing.request) so that a field label can never be one of them:
# the parser would swallow such a line as the type.
TYPE_LINE_KEYS: frozenset[str] = frozenset({"type", "case type", "種別", "申請種別"})
RESERVED_FIELD_NAMES: frozenset[str] = frozenset({"type", "title"})
# Characters that split a "list" field; a choice containing one could never be chosen.
LIST_SEPARATORS: str = ",，、;；\n"

_TYPE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_FIELDS_HEADER = re.compile(r"^\s*\[\[\s*fields\s*\]\]")
_TABLE_HEADER = re.compile(r"^\s*\[")
_TOP_KEYS = ("name", "title", "title_ja", "description", "description_ja", "fields")
_FIELD_KEYS = ("name", "label", "label_ja", "kind", "required", "choices", "help", "help_ja")


def normalise_key(text: str) -> str:
    """Fold a key so 'Amount', ' amount ' and full-width 'Ａｍｏｕｎｔ' compare equal.

    Mail is typed with IMEs that produce full-width letters and spaces, so NFKC comes
    before casefolding and whitespace collapsing.
    """
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@dataclass(frozen=True)
class FieldSpec:
    """One "Label: value" line of a case type's form."""

    name: str
    label: str
    label_ja: str
    kind: FieldKind
    required: bool
    choices: tuple[str, ...] = ()
    help: str = ""
    help_ja: str = ""

    def match_keys(self) -> frozenset[str]:
        """Every normalised spelling a mail may use for this field."""
        raw = (self.name, self.name.replace("_", " "), self.label, self.label_ja)
        return frozenset(normalise_key(k) for k in raw if k.strip())


@dataclass(frozen=True)
class CaseType:
    """A kind of request (travel, purchase, ...) and the fields its form holds."""

    name: str
    title: str
    title_ja: str
    description: str
    description_ja: str
    fields: tuple[FieldSpec, ...]
    source: str

    def match_keys(self) -> frozenset[str]:
        """Every normalised spelling a "Type:" line may use for this case type."""
        return frozenset(normalise_key(k) for k in (self.name, self.title, self.title_ja) if k)


class CaseTypeError(Exception):
    """Raised with every problem found, each as "FILE[:LINE]: message"."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class CaseTypeRegistry:
    """Lookup of case types by any name a user may type on the "Type:" line."""

    def __init__(self, types: Iterable[CaseType]) -> None:
        self._types = sorted(types, key=lambda t: t.name)
        self._index, errors = _index(self._types)
        if errors:
            raise CaseTypeError(errors)

    def get(self, key: str) -> CaseType | None:
        """Find a type by name, English title or Japanese title, ignoring case and spacing."""
        return self._index.get(normalise_key(key))

    def all(self) -> list[CaseType]:
        """All types, sorted by name."""
        return list(self._types)


def load_case_types(directory: pathlib.Path) -> CaseTypeRegistry:
    """Load every ``*.toml`` in *directory*; raise one CaseTypeError listing all problems."""
    if not directory.is_dir():
        raise CaseTypeError([f"{directory}: not a directory of case type files"])
    types: list[CaseType] = []
    errors: list[str] = []
    for path in sorted(directory.glob("*.toml")):
        case_type, file_errors = _load_file(path)
        errors.extend(file_errors)
        if case_type is not None:
            types.append(case_type)
    errors.extend(_index(types)[1])
    if errors:
        raise CaseTypeError(errors)
    return CaseTypeRegistry(types)


def read_case_type_files(
    directory: pathlib.Path,
) -> tuple[list[CaseType], dict[str, list[str]], dict[str, str]]:
    """Each file on its own, for a start that must not stop on one bad form: the types that
    load, the problems of each refused file (a name or title another file already uses
    refuses the later file) and the text of each good file (kept as its last good version).
    Only a missing directory is still a CaseTypeError."""
    if not directory.is_dir():
        raise CaseTypeError([f"{directory}: not a directory of case type files"])
    types: list[CaseType] = []
    bad: dict[str, list[str]] = {}
    texts: dict[str, str] = {}
    for path in sorted(directory.glob("*.toml")):
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            bad[str(path)] = [f"{path}: cannot read file: {exc}"]
            continue
        case_type, errors = case_type_from_text(path, text)
        errors = errors or clashes(types, case_type)
        if case_type is None or errors:
            bad[str(path)] = errors
        else:
            types.append(case_type)
            texts[str(path)] = text
    return types, bad, texts


def clashes(types: list[CaseType], case_type: CaseType | None) -> list[str]:
    """Problems when *case_type* answers to a name or title one of *types* already has."""
    if case_type is None:
        return []
    return [e for e in _index([*types, case_type])[1] if e.startswith(f"{case_type.source}:")]


def _index(types: Iterable[CaseType]) -> tuple[dict[str, CaseType], list[str]]:
    """Map every lookup key to its type; a key shared by two types is an error."""
    index: dict[str, CaseType] = {}
    errors: list[str] = []
    for case_type in types:
        for key in sorted(case_type.match_keys()):
            other = index.setdefault(key, case_type)
            if other is not case_type:
                errors.append(
                    f"{case_type.source}: case type '{case_type.name}' answers to '{key}', "
                    f"which already names case type '{other.name}' ({other.source}); "
                    "names and titles must be unique"
                )
    return index, errors


def _load_file(path: pathlib.Path) -> tuple[CaseType | None, list[str]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{path}: cannot read file: {exc}"]
    return case_type_from_text(path, text)


def case_type_from_text(path: pathlib.Path, text: str) -> tuple[CaseType | None, list[str]]:
    """One case type from a file's text (also a stored last good version of *path*)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [f"{path}: invalid TOML: {exc}"]
    checker = _Checker(path, text)
    case_type = checker.case_type(data)
    return (None if checker.errors else case_type), checker.errors


class _Checker:
    """Validates one parsed file, collecting errors with best-effort line numbers.

    tomllib keeps no positions, so lines are found by scanning the text for the key
    (within the n-th ``[[fields]]`` table for field keys).
    """

    def __init__(self, path: pathlib.Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.errors: list[str] = []
        self.headers = [n for n, line in enumerate(self.lines, 1) if _FIELDS_HEADER.match(line)]

    def error(self, line: int | None, message: str) -> None:
        self.errors.append(f"{self.path}:{line}: {message}" if line else f"{self.path}: {message}")

    def line_of(self, key: str | None, field: int | None = None) -> int | None:
        """Line of *key* at top level or in field table *field*; else the table header."""
        if field is None:
            start, header = 1, None
        elif field < len(self.headers):
            start = header = self.headers[field]
        else:
            return None
        if key is None:
            return header
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for number in range(start, len(self.lines) + 1):
            line = self.lines[number - 1]
            if number > start and _TABLE_HEADER.match(line):
                break
            if pattern.match(line):
                return number
        return header

    def string(self, table: Mapping[str, Any], key: str, field: int | None, where: str,
               required: bool = False) -> str:
        value = table.get(key)
        if value is None:
            if required:
                self.error(self.line_of(None, field), f"{where}missing required key '{key}'")
            return ""
        if not isinstance(value, str):
            self.error(self.line_of(key, field), f"{where}'{key}' must be a string")
            return ""
        if required and not value.strip():
            self.error(self.line_of(key, field), f"{where}'{key}' must not be empty")
        return value.strip()

    def unknown_keys(self, table: Mapping[str, Any], allowed: tuple[str, ...],
                     field: int | None, where: str) -> None:
        for key in table:
            if key not in allowed:
                self.error(self.line_of(key, field),
                           f"{where}unknown key '{key}'; allowed keys are: {', '.join(allowed)}")

    def case_type(self, data: Mapping[str, Any]) -> CaseType:
        self.unknown_keys(data, _TOP_KEYS, None, "")
        name = self.string(data, "name", None, "", required=True)
        title = self.string(data, "title", None, "", required=True)
        if name and not _TYPE_NAME.match(name):
            self.error(self.line_of("name"), f"name '{name}' must be lower-case letters, "
                       "digits, '-' or '_' (it is typed on the 'Type:' line)")
        raw_fields = data.get("fields", [])
        if not isinstance(raw_fields, list) or not all(isinstance(f, dict) for f in raw_fields):
            self.error(self.line_of("fields"), "'fields' must be a list of [[fields]] tables")
            raw_fields = []
        indexed = [(n, spec) for n, raw in enumerate(raw_fields)
                   if (spec := self.field(n, raw)) is not None]
        self.duplicates(indexed)
        return CaseType(
            name=name, title=title,
            title_ja=self.string(data, "title_ja", None, ""),
            description=self.string(data, "description", None, ""),
            description_ja=self.string(data, "description_ja", None, ""),
            fields=tuple(spec for _, spec in indexed), source=str(self.path),
        )

    def field(self, n: int, raw: Mapping[str, Any]) -> FieldSpec | None:
        before = len(self.errors)
        declared = raw.get("name")
        where = f"field '{declared}': " if isinstance(declared, str) else f"field #{n + 1}: "
        self.unknown_keys(raw, _FIELD_KEYS, n, where)
        name = self.string(raw, "name", n, where, required=True)
        label = self.string(raw, "label", n, where, required=True)
        label_ja = self.string(raw, "label_ja", n, where)
        if name and not _FIELD_NAME.match(name):
            self.error(self.line_of("name", n), f"{where}name must be lower-case letters, "
                       "digits and '_', starting with a letter")
        if name in RESERVED_FIELD_NAMES:
            self.error(self.line_of("name", n), f"{where}name '{name}' is reserved; "
                       f"reserved names are: {', '.join(sorted(RESERVED_FIELD_NAMES))}")
        for text in (label, label_ja):
            if normalise_key(text) in TYPE_LINE_KEYS:
                self.error(self.line_of("label_ja" if text is label_ja else "label", n),
                           f"{where}label '{text}' would be read as the case type line")
        kind_text = self.string(raw, "kind", n, where, required=True)
        kind = _KINDS.get(kind_text)
        if kind_text and kind is None:
            self.error(self.line_of("kind", n), f"{where}kind '{kind_text}' is not one of: "
                       f"{', '.join(_KINDS)}")
        choices = self.choices(raw, n, where, kind)
        required = raw.get("required", False)
        if not isinstance(required, bool):
            self.error(self.line_of("required", n), f"{where}'required' must be true or false")
        if kind is None or len(self.errors) > before:
            return None
        return FieldSpec(
            name=name, label=label, label_ja=label_ja, kind=kind, required=bool(required),
            choices=choices, help=self.string(raw, "help", n, where),
            help_ja=self.string(raw, "help_ja", n, where),
        )

    def choices(self, raw: Mapping[str, Any], n: int, where: str,
                kind: FieldKind | None) -> tuple[str, ...]:
        value = raw.get("choices", [])
        line = self.line_of("choices", n)
        if not isinstance(value, list) or not all(isinstance(c, str) and c.strip() for c in value):
            self.error(line, f"{where}'choices' must be a list of non-empty strings")
            return ()
        choices = tuple(c.strip() for c in value)
        if kind == "choice" and not choices:
            self.error(line, f"{where}kind 'choice' needs a non-empty 'choices' list")
        if choices and kind not in ("choice", "list", None):
            self.error(line, f"{where}'choices' only applies to kind 'choice' or 'list'")
        folded = [normalise_key(c) for c in choices]
        for dup in sorted({c for c in folded if folded.count(c) > 1}):
            self.error(line, f"{where}choice '{dup}' is listed more than once")
        if kind == "list":
            for choice in choices:
                if any(sep in choice for sep in LIST_SEPARATORS):
                    self.error(line, f"{where}choice '{choice}' contains a list separator")
        return choices

    def duplicates(self, indexed: list[tuple[int, FieldSpec]]) -> None:
        """Fields match by name or either label, so all of those must be unique together."""
        owner: dict[str, FieldSpec] = {}
        reported: set[tuple[str, str]] = set()
        for n, spec in indexed:
            for key in sorted(spec.match_keys()):
                other = owner.setdefault(key, spec)
                if other is spec or (other.name, spec.name) in reported:
                    continue
                reported.add((other.name, spec.name))
                self.error(self.line_of(None, n), f"field '{spec.name}': '{key}' already names "
                           f"field '{other.name}'; field names and labels must be unique")
