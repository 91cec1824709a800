"""Load and validate organisation directory files (units, positions, people, roles, relations).

The directory decides who may approve what, so a file is accepted whole or
refused whole: silently dropping one bad entry could route an approval to the
wrong person. Every problem is collected and reported with the line of the
offending entry (or key) so an administrator can fix the file in one pass.
No database access happens here; callers decide what to do with the data.

Sections (keys as in samples/organisation.toml, which documents each):
units and positions (required), people (with the optional qualifications may_register and
may_approve: booleans, absent meaning by rank), roles (optional: unit, role, person) and
relations (optional: approver, person | unit, kind, valid_from, valid_to,
registered_by); roles and relations are checked by :mod:`daemon.directory.posts`.
Dates are TOML/YAML dates or "YYYY-MM-DD" strings.

CSV is one sheet whose ``kind`` column names the row type (unit, position, person,
role or relation); only ``kind`` is required in the header. Columns: kind, id, name,
name_ja, parent, rank, emails (";"-separated), locale, unit, position, active,
may_register, may_approve (true/false, yes/no, 1/0; empty: by rank), role,
person, approver, relation_kind, valid_from, valid_to, registered_by. A role row
fills unit, role, person; a relation row fills approver, person *or* unit (the
approval object), relation_kind (the relation's kind: ``kind`` is the row type),
valid_from, valid_to, registered_by. Cells a row type does not use must be empty.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field, replace

from daemon.directory.addresses import email_problem
from daemon.directory.fields import ID, ID_RULE, cycles, hint, type_name
from daemon.directory.fields import need as _need
from daemon.directory.formats import (
    SECTIONS,
    LineMap,
    ParsedFile,
    Path,
    SyntaxProblem,
    locate,
    read_csv,
    read_json,
    read_toml,
    read_yaml,
)
from daemon.directory.posts import read_relations, read_roles
from daemon.directory.records import (
    DirectoryData,
    PersonRecord,
    Position,
    RelationRecord,
    RoleRecord,
    Unit,
)

__all__ = [
    "LOCALES",
    "DirectoryData",
    "DirectoryFileError",
    "PersonRecord",
    "Position",
    "RelationRecord",
    "RoleRecord",
    "Unit",
    "email_problem",
    "format_for",
    "load_directory",
    "parse_directory",
]


class DirectoryFileError(Exception):
    """A file refused whole; errors are line-level ("SOURCE:LINE: message")."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


_READERS = {"toml": read_toml, "json": read_json, "yaml": read_yaml, "csv": read_csv}
_SUFFIXES = {".toml": "toml", ".json": "json", ".yaml": "yaml", ".yml": "yaml", ".csv": "csv"}
LOCALES = frozenset({"en", "ja"})
# Far above a 100,000-person directory (about 300 bytes each), far below what would make
# the import a memory problem; YAML is also bounded in shape (daemon.parsing.safeyaml).
MAX_DIRECTORY_BYTES = 64 * 1024 * 1024
MAX_RANK = 1_000_000  # ranks compare positions; any larger number is a typing slip
_KIND = {"units": "unit", "positions": "position", "people": "person"}
_ALLOWED = {
    "units": ("id", "name", "name_ja", "parent"),
    "positions": ("id", "name", "name_ja", "rank"),
    "people": ("id", "name", "name_ja", "emails", "email", "locale", "unit", "position", "active",
               "may_register", "may_approve"),
}
QUALIFICATIONS = ("may_register", "may_approve")


def format_for(path: pathlib.Path) -> str:
    """The format a file's suffix names, or a DirectoryFileError saying which are known."""
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(_SUFFIXES))
        raise DirectoryFileError([f"{path}: unsupported file type {path.suffix!r} (use {known})"])
    return fmt


def load_directory(path: pathlib.Path) -> DirectoryData:
    """Read ``path`` and parse it in the format its suffix names."""
    fmt = format_for(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DirectoryFileError([f"{path}: cannot read file: {exc.strerror or exc}"]) from exc
    return parse_directory(data, fmt, str(path))


def parse_directory(data: bytes, fmt: str, source: str) -> DirectoryData:
    """Parse and validate ``data`` (toml/json/yaml/yml/csv); ``source`` names it in errors."""
    fmt = fmt.lower().lstrip(".")
    reader = _READERS.get("yaml" if fmt == "yml" else fmt)
    if reader is None:
        raise ValueError(f"unknown directory format {fmt!r}")
    if len(data) > MAX_DIRECTORY_BYTES:
        raise DirectoryFileError([f"{source}: file is {len(data):,} bytes; a directory file "
                                  f"may be at most {MAX_DIRECTORY_BYTES:,}"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        bad = data[exc.start : exc.start + 1].hex()
        raise DirectoryFileError(
            [f"{source}:{line}: file is not valid UTF-8 (byte 0x{bad} at offset {exc.start})"]
        ) from None
    if not text.strip():
        raise DirectoryFileError([f"{source}: file is empty"])
    try:
        parsed = reader(text)
    except SyntaxProblem as exc:
        raise DirectoryFileError([_format(source, exc.line, exc.message)]) from None
    return _Validator(source, parsed).run()


def _format(source: str, line: int | None, message: str) -> str:
    return f"{source}:{line}: {message}" if line is not None else f"{source}: {message}"


@dataclass
class _Draft:
    """An entry as far as it validated; missing pieces stay None so checks can continue."""

    path: tuple[str, int]
    label: str
    id: str | None = None
    name: str | None = None
    name_ja: str | None = None
    parent: str | None = None
    rank: int | None = None
    emails: list[tuple[str, Path]] = field(default_factory=list)
    locale: str = "en"
    unit: str | None = None
    position: str | None = None
    active: bool = True
    may_register: bool | None = None  # absent: by the position's rank
    may_approve: bool | None = None


class _Validator:
    """Collects every problem in one pass; raises only at the end."""

    def __init__(self, source: str, parsed: ParsedFile) -> None:
        self.source = source
        self.data = parsed.data
        self.lines: LineMap = parsed.lines
        self.errors: list[tuple[int | None, str]] = list(parsed.errors)

    def error(self, path: Path, message: str) -> None:
        self.errors.append((locate(self.lines, path), message))

    def fail(self, draft: _Draft, key: str | Path | None, message: str) -> None:
        """Report against ``draft`` (or one of its keys), prefixed with its label."""
        where = () if key is None else (key,) if isinstance(key, str) else key
        self.error((*draft.path, *where), f"{draft.label}: {message}")

    def line_of(self, path: Path) -> str:
        line = locate(self.lines, path)
        return f"line {line}" if line is not None else "unknown line"

    def run(self) -> DirectoryData:
        sections = self._sections()
        drafts = {
            name: [d for i, raw in enumerate(sections[name]) if (d := self._entry(name, i, raw))]
            for name in _KIND
        }
        units = self._unique_ids("units", drafts["units"])
        self._check_unit_tree(drafts["units"], units)
        positions = self._unique_ids("positions", drafts["positions"])
        self._check_ranks(drafts["positions"])
        people = self._unique_ids("people", drafts["people"])
        self._check_people(drafts["people"], units, positions)
        roles = read_roles(self, sections["roles"], units, people)
        relations = read_relations(self, sections["relations"], units)
        if self.errors:
            ordered = sorted(self.errors, key=lambda e: e[0] or 0)
            raise DirectoryFileError([_format(self.source, ln, msg) for ln, msg in ordered])
        data = self._build(drafts, tuple(roles), tuple(r for r, _ in relations))
        return replace(data, source=self.source,
                       relation_lines=tuple(locate(self.lines, path) for _, path in relations))

    def _sections(self) -> dict[str, list[object]]:
        root = self.data
        if not isinstance(root, dict):
            self.error((), f"top level must be a table, got {type_name(root)}")
            return {name: [] for name in SECTIONS}
        for key in root:
            if key not in SECTIONS:
                self.error((str(key),), f"unknown top-level key {key!r}{hint(key, SECTIONS)}")
        sections: dict[str, list[object]] = {}
        for name in SECTIONS:
            value = root.get(name, [])
            if not isinstance(value, list):
                self.error((name,), f"{name!r} must be a list of tables")
                value = []
            elif not value and name in ("units", "positions"):
                self.error((name,), f"at least one {_KIND[name]} is required")
            sections[name] = value
        return sections

    # ------------------------------------------------------------ one entry

    def _entry(self, section: str, index: int, raw: object) -> _Draft | None:
        path = (section, index)
        kind = _KIND[section]
        if not isinstance(raw, dict):
            self.error(path, f"{kind} #{index + 1} must be a table, got {type_name(raw)}")
            return None
        draft = _Draft(path=path, label=f"{kind} #{index + 1}")
        draft.id = self._string(raw, draft, "id", required=True)
        if draft.id is not None:
            draft.label = f"{kind} {draft.id!r}"
            if not ID.fullmatch(draft.id):
                self.fail(draft, "id", f"id must be {ID_RULE}")
        for key in raw:
            if key not in _ALLOWED[section]:
                self.fail(draft, str(key), f"unknown key {key!r}{hint(key, _ALLOWED[section])}")
        draft.name = self._string(raw, draft, "name", required=True)
        draft.name_ja = self._string(raw, draft, "name_ja", required=False) or draft.name
        if section == "units":
            draft.parent = self._string(raw, draft, "parent", required=False)
        elif section == "positions":
            draft.rank = self._rank(raw, draft)
        else:
            self._person_fields(raw, draft)
        return draft

    def _string(
        self, raw: dict[str, object], draft: _Draft, key: str, *, required: bool
    ) -> str | None:
        if key not in raw:
            if required:
                self.fail(draft, None, f"missing required key {key!r}")
            return None
        value = raw[key]
        if not isinstance(value, str):
            self.fail(draft, key, f"{key!r} must be a string, got {type_name(value)}")
            return None
        if not value.strip():
            self.fail(draft, key, f"{key!r} must not be empty")
            return None
        return value

    def _rank(self, raw: dict[str, object], draft: _Draft) -> int | None:
        if "rank" not in raw:
            self.fail(draft, None, "missing required key 'rank'")
            return None
        value = raw["rank"]
        if isinstance(value, bool) or not isinstance(value, int):
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:59] + "…"
            self.fail(draft, "rank", f"'rank' must be an integer, got {shown}")
            return None
        if abs(value) > MAX_RANK:
            self.fail(draft, "rank", f"'rank' must be between -{MAX_RANK:,} and {MAX_RANK:,}")
            return None
        return value

    def _person_fields(self, raw: dict[str, object], draft: _Draft) -> None:
        self._emails(raw, draft)
        locale = self._string(raw, draft, "locale", required=False)
        if locale is not None and locale not in LOCALES:
            self.fail(draft, "locale", f"locale must be 'en' or 'ja', got {locale!r}")
        elif locale is not None:
            draft.locale = locale
        draft.unit = self._string(raw, draft, "unit", required=True)
        draft.position = self._string(raw, draft, "position", required=True)
        if "active" in raw:
            active = raw["active"]
            if isinstance(active, bool):
                draft.active = active
            else:
                self.fail(draft, "active", f"'active' must be a boolean, got {active!r}")
        for key in QUALIFICATIONS:
            if key not in raw:
                continue
            value = raw[key]
            if isinstance(value, bool):
                setattr(draft, key, value)
            else:
                self.fail(draft, key, f"{key!r} must be a boolean (true or false; omit it for "
                          f"the default by rank), got {value!r}")

    def _emails(self, raw: dict[str, object], draft: _Draft) -> None:
        candidates: list[tuple[object, Path]]
        if "email" in raw and "emails" in raw:
            self.fail(draft, "email", "give either 'email' or 'emails', not both")
            return
        if "email" in raw:  # shorthand for a one-element list
            candidates = [(raw["email"], (*draft.path, "email"))]
        elif "emails" not in raw:
            self.fail(draft, None, "missing required key 'emails'")
            return
        elif not isinstance(raw["emails"], list):
            got = type_name(raw["emails"])
            self.fail(draft, "emails", f"'emails' must be a list of strings, got {got}")
            return
        else:
            candidates = [(v, (*draft.path, "emails", i)) for i, v in enumerate(raw["emails"])]
            if not candidates:
                self.fail(draft, "emails", "'emails' must not be empty")
        for value, where in candidates:
            if not isinstance(value, str):
                got = type_name(value)
                self.fail(draft, where[2:], f"email addresses must be strings, got {got}")
            elif problem := email_problem(value):
                self.fail(draft, where[2:], f"invalid email address {value!r}: {problem}")
            else:
                draft.emails.append((value.lower(), where))

    # ---------------------------------------------------- across entries

    def _unique_ids(self, section: str, drafts: list[_Draft]) -> dict[str, _Draft]:
        first: dict[str, _Draft] = {}
        for draft in drafts:
            if draft.id is None:
                continue
            if draft.id in first:
                where = self.line_of(first[draft.id].path)
                self.fail(draft, "id", f"duplicate id {draft.id!r} (first at {where})")
            else:
                first[draft.id] = draft
        return first

    def _check_unit_tree(self, drafts: list[_Draft], units: dict[str, _Draft]) -> None:
        parents: dict[str, str] = {}
        for draft in drafts:
            if draft.parent is None or draft.id is None:
                continue
            if draft.parent not in units:
                self.fail(draft, "parent", f"unknown parent unit {draft.parent!r}")
            elif units[draft.id] is draft:
                parents[draft.id] = draft.parent
        for cycle in cycles(parents, units):
            cycle_text = " -> ".join(cycle)
            self.error((*units[cycle[0]].path, "parent"), f"unit tree has a cycle: {cycle_text}")

    def _check_ranks(self, drafts: list[_Draft]) -> None:
        by_rank: dict[int, _Draft] = {}
        for draft in drafts:
            if draft.rank is None:
                continue
            other = by_rank.setdefault(draft.rank, draft)
            if other is not draft:
                where = self.line_of((*other.path, "rank"))
                self.fail(
                    draft, "rank", f"rank {draft.rank} is already used by {other.label} ({where})"
                )

    def _check_people(
        self, drafts: list[_Draft], units: dict[str, _Draft], positions: dict[str, _Draft]
    ) -> None:
        owners: dict[str, tuple[_Draft, Path]] = {}
        for draft in drafts:
            for address, where in draft.emails:
                if address in owners:
                    owner, owner_where = owners[address]
                    self.fail(
                        draft,
                        where[2:],
                        f"email {address!r} is already used by "
                        f"{owner.label} ({self.line_of(owner_where)})",
                    )
                else:
                    owners[address] = (draft, where)
            if draft.unit is not None and draft.unit not in units:
                self.fail(draft, "unit", f"unknown unit {draft.unit!r}")
            if draft.position is not None and draft.position not in positions:
                self.fail(draft, "position", f"unknown position {draft.position!r}")

    def _build(
        self,
        drafts: dict[str, list[_Draft]],
        roles: tuple[RoleRecord, ...],
        relations: tuple[RelationRecord, ...],
    ) -> DirectoryData:
        return DirectoryData(
            units=tuple(
                Unit(_need(d.id), _need(d.name), _need(d.name_ja), d.parent)
                for d in drafts["units"]
            ),
            positions=tuple(
                Position(_need(d.id), _need(d.name), _need(d.name_ja), _need(d.rank))
                for d in drafts["positions"]
            ),
            people=tuple(
                PersonRecord(
                    _need(d.id), _need(d.name), _need(d.name_ja),
                    tuple(address for address, _ in d.emails),
                    d.locale, _need(d.unit), _need(d.position), d.active,
                    d.may_register, d.may_approve,
                )
                for d in drafts["people"]
            ),
            roles=roles,
            relations=relations,
        )

