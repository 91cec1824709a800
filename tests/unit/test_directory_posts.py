"""Directory roles (posts held in units) and registered approval relations: parsing only."""

from __future__ import annotations

import csv
import datetime
import io
from dataclasses import dataclass

import pytest

from daemon.directory.loader import (
    DirectoryData,
    DirectoryFileError,
    RelationRecord,
    RoleRecord,
    parse_directory,
)

# The same organisation in every format. Line numbers in the tables below refer to these
# texts, so keep their layout stable.
POSTS_TOML = """\
[[units]]
id = "hq"
name = "HQ"

[[units]]
id = "eng"
name = "Engineering"
parent = "hq"

[[positions]]
id = "staff"
name = "Staff"
rank = 10

[[positions]]
id = "boss"
name = "Boss"
rank = 20

[[people]]
id = "tanaka"
name = "Tanaka"
email = "tanaka@example.com"
unit = "eng"
position = "staff"

[[people]]
id = "suzuki"
name = "Suzuki"
email = "suzuki@example.com"
unit = "eng"
position = "boss"

[[people]]
id = "smith"
name = "Smith"
email = "smith@example.com"
unit = "hq"
position = "boss"

[[roles]]
unit = "eng"
role = "head"
person = "suzuki"

[[roles]]
unit = "hq"
role = "head"
person = "smith"

[[relations]]
approver = "suzuki"
person = "tanaka"
kind = "responsible"
valid_from = 2026-01-01
valid_to = 2026-12-31
registered_by = "smith"

[[relations]]
approver = "tanaka"
person = "suzuki"
kind = "proxy"
valid_from = 2026-04-01

[[relations]]
approver = "smith"
unit = "eng"
kind = "responsible"
valid_from = "2026-01-01"
"""

POSTS_JSON = """\
{
  "units": [
    {"id": "hq", "name": "HQ"},
    {"id": "eng", "name": "Engineering", "parent": "hq"}
  ],
  "positions": [
    {"id": "staff", "name": "Staff", "rank": 10},
    {"id": "boss", "name": "Boss", "rank": 20}
  ],
  "people": [
    {"id": "tanaka", "name": "Tanaka", "email": "tanaka@example.com",
     "unit": "eng", "position": "staff"},
    {"id": "suzuki", "name": "Suzuki", "email": "suzuki@example.com",
     "unit": "eng", "position": "boss"},
    {"id": "smith", "name": "Smith", "email": "smith@example.com",
     "unit": "hq", "position": "boss"}
  ],
  "roles": [
    {"unit": "eng", "role": "head", "person": "suzuki"},
    {
      "unit": "hq",
      "role": "head",
      "person": "smith"
    }
  ],
  "relations": [
    {
      "approver": "suzuki",
      "person": "tanaka",
      "kind": "responsible",
      "valid_from": "2026-01-01",
      "valid_to": "2026-12-31",
      "registered_by": "smith"
    },
    {"approver": "tanaka", "person": "suzuki", "kind": "proxy", "valid_from": "2026-04-01"},
    {"approver": "smith", "unit": "eng", "kind": "responsible", "valid_from": "2026-01-01"}
  ]
}
"""

POSTS_YAML = """\
units:
  - {id: hq, name: HQ}
  - {id: eng, name: Engineering, parent: hq}
positions:
  - {id: staff, name: Staff, rank: 10}
  - {id: boss, name: Boss, rank: 20}
people:
  - {id: tanaka, name: Tanaka, email: tanaka@example.com, unit: eng, position: staff}
  - {id: suzuki, name: Suzuki, email: suzuki@example.com, unit: eng, position: boss}
  - {id: smith, name: Smith, email: smith@example.com, unit: hq, position: boss}
roles:
  - {unit: eng, role: head, person: suzuki}
  - unit: hq
    role: head
    person: smith
relations:
  - approver: suzuki
    person: tanaka
    kind: responsible
    valid_from: 2026-01-01
    valid_to: 2026-12-31
    registered_by: smith
  - {approver: tanaka, person: suzuki, kind: proxy, valid_from: 2026-04-01}
  - {approver: smith, unit: eng, kind: responsible, valid_from: "2026-01-01"}
"""

CSV_COLUMNS = [
    "kind", "id", "name", "parent", "rank", "emails", "unit", "position",
    "role", "person", "approver", "relation_kind", "valid_from", "valid_to", "registered_by",
]  # fmt: skip


def _csv(rows: list[dict[str, str]]) -> str:
    """One line per row (line N+1 holds rows[N-1]); empty cells where a row has no value."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


POSTS_CSV = _csv([
    {"kind": "unit", "id": "hq", "name": "HQ"},  # line 2
    {"kind": "unit", "id": "eng", "name": "Engineering", "parent": "hq"},
    {"kind": "position", "id": "staff", "name": "Staff", "rank": "10"},
    {"kind": "position", "id": "boss", "name": "Boss", "rank": "20"},
    {"kind": "person", "id": "tanaka", "name": "Tanaka", "emails": "tanaka@example.com",
     "unit": "eng", "position": "staff"},  # line 6
    {"kind": "person", "id": "suzuki", "name": "Suzuki", "emails": "suzuki@example.com",
     "unit": "eng", "position": "boss"},
    {"kind": "person", "id": "smith", "name": "Smith", "emails": "smith@example.com",
     "unit": "hq", "position": "boss"},
    {"kind": "role", "unit": "eng", "role": "head", "person": "suzuki"},  # line 9
    {"kind": "role", "unit": "hq", "role": "head", "person": "smith"},
    {"kind": "relation", "approver": "suzuki", "person": "tanaka",  # line 11
     "relation_kind": "responsible", "valid_from": "2026-01-01", "valid_to": "2026-12-31",
     "registered_by": "smith"},
    {"kind": "relation", "approver": "tanaka", "person": "suzuki", "relation_kind": "proxy",
     "valid_from": "2026-04-01"},
    {"kind": "relation", "approver": "smith", "unit": "eng", "relation_kind": "responsible",
     "valid_from": "2026-01-01"},  # line 13
])  # fmt: skip

BASES = {"toml": POSTS_TOML, "json": POSTS_JSON, "yaml": POSTS_YAML, "csv": POSTS_CSV}

JAN1, APR1 = datetime.date(2026, 1, 1), datetime.date(2026, 4, 1)
DEC31 = datetime.date(2026, 12, 31)
EXPECTED_ROLES = (RoleRecord("eng", "head", "suzuki"), RoleRecord("hq", "head", "smith"))
EXPECTED_RELATIONS = (
    RelationRecord("suzuki", "person", "tanaka", "responsible", JAN1, DEC31, "smith"),
    RelationRecord("tanaka", "person", "suzuki", "proxy", APR1, None, None),
    RelationRecord("smith", "unit", "eng", "responsible", JAN1, None, None),
)


def parse(fmt: str, text: str) -> DirectoryData:
    return parse_directory(text.encode("utf-8"), fmt, "org")


def errors_of(fmt: str, text: str) -> list[str]:
    with pytest.raises(DirectoryFileError) as info:
        parse(fmt, text)
    return info.value.errors


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize("fmt", sorted(BASES))
def test_roles_and_relations_parse_in_every_format(fmt: str) -> None:
    data = parse(fmt, BASES[fmt])
    assert data.roles == EXPECTED_ROLES
    assert data.relations == EXPECTED_RELATIONS
    assert [p.id for p in data.people] == ["tanaka", "suzuki", "smith"]


@pytest.mark.parametrize("fmt", sorted(BASES))
def test_sections_are_optional(fmt: str) -> None:
    text = {
        "toml": POSTS_TOML.split("[[roles]]")[0],
        "json": POSTS_JSON.split(',\n  "roles"')[0] + "\n}\n",
        "yaml": POSTS_YAML.split("roles:")[0],
        "csv": "\n".join(POSTS_CSV.splitlines()[:8]) + "\n",
    }[fmt]
    data = parse(fmt, text)
    assert data.roles == () and data.relations == ()


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_empty_sections_are_accepted(fmt: str) -> None:
    if fmt == "json":
        text = POSTS_JSON.split(',\n  "roles"')[0] + ',\n  "roles": [],\n  "relations": []\n}\n'
    else:
        text = POSTS_YAML.split("roles:")[0] + "roles: []\nrelations: []\n"
    assert parse(fmt, text).roles == ()


def test_directory_data_defaults_keep_old_callers_working() -> None:
    data = DirectoryData(units=(), positions=(), people=())
    assert data.roles == () and data.relations == ()


def test_relation_describe() -> None:
    assert EXPECTED_RELATIONS[0].describe() == (
        "suzuki->person tanaka responsible 2026-01-01..2026-12-31"
    )
    assert EXPECTED_RELATIONS[2].describe() == "smith->unit eng responsible 2026-01-01.."


def test_one_day_relation_and_adjacent_periods_are_accepted() -> None:
    # valid_to == valid_from is one day; the next registration may start the day after.
    text = edit(POSTS_TOML, "valid_to = 2026-12-31", "valid_to = 2026-01-01")
    text += (
        '\n[[relations]]\napprover = "suzuki"\nperson = "tanaka"\nkind = "responsible"\n'
        "valid_from = 2026-01-02\n"
    )
    rels = parse("toml", text).relations
    assert [(r.valid_from, r.valid_to) for r in rels if r.approver == "suzuki"] == [
        (JAN1, JAN1), (datetime.date(2026, 1, 2), None)
    ]  # fmt: skip


def test_relations_may_name_people_not_in_the_file() -> None:
    # Registrations may outlive a person's entry: the importer warns, the loader accepts.
    text = edit(POSTS_TOML, 'approver = "tanaka"', 'approver = "gone"')
    assert parse("toml", text).relations[1].approver == "gone"


def test_csv_relation_kind_column_is_the_relation_kind() -> None:
    assert [r.kind for r in parse("csv", POSTS_CSV).relations] == [
        "responsible", "proxy", "responsible"
    ]  # fmt: skip


# ------------------------------------------------------- line-level errors


@dataclass(frozen=True)
class Case:
    fmt: str
    old: str
    new: str
    line: int
    fragment: str

    def __str__(self) -> str:
        return f"{self.fmt}:{self.line}:{self.fragment}"


R1 = 'approver = "suzuki"\nperson = "tanaka"\nkind = "responsible"'
R2 = 'approver = "tanaka"\nperson = "suzuki"\nkind = "proxy"'
R3 = 'approver = "smith"\nunit = "eng"\nkind = "responsible"'
HQ_HEAD = 'unit = "hq"\nrole = "head"\nperson = "smith"'
J_ROLES = POSTS_JSON[POSTS_JSON.index('"roles"') : POSTS_JSON.index('  "relations"')]
J_R2 = '{"approver": "tanaka", "person": "suzuki", "kind": "proxy", "valid_from": "2026-04-01"}'
Y_R2 = "{approver: tanaka, person: suzuki, kind: proxy, valid_from: 2026-04-01}"
Y_R3 = '{approver: smith, unit: eng, kind: responsible, valid_from: "2026-01-01"}'
C_R2 = "relation,,,,,,,,,suzuki,tanaka,proxy,2026-04-01,,"
C_R3 = "relation,,,,,,eng,,,,smith,responsible,2026-01-01,,"
C_HQ = "role,,,,,,hq,,head,smith,,,,,"

# fmt: off
CASES = [
    # ---- TOML: entries map to their [[roles]] / [[relations]] header, keys to their line
    Case("toml", HQ_HEAD, HQ_HEAD + '\ncolour = "red"', 50,
         "role #2: unknown key 'colour' (allowed: unit, role, person)"),
    Case("toml", HQ_HEAD, HQ_HEAD + '\npersn = "smith"', 50,
         "role #2: unknown key 'persn' (did you mean 'person'?)"),
    Case("toml", HQ_HEAD, 'role = "head"\nperson = "smith"', 46,
         "role #2: missing required key 'unit'"),
    Case("toml", HQ_HEAD, 'unit = "hr"\nrole = "head"\nperson = "smith"', 47,
         "role #2: unknown unit 'hr'"),
    Case("toml", HQ_HEAD, 'unit = "hq"\nrole = "head"\nperson = "smyth"', 49,
         "role #2: unknown person 'smyth'"),
    Case("toml", HQ_HEAD, 'unit = "hq"\nrole = "head of"\nperson = "smith"', 48,
         "role #2: 'role' must be 1-64 letters"),
    Case("toml", HQ_HEAD, 'unit = "hq"\nrole = ""\nperson = "smith"', 48,
         "role #2: 'role' must not be empty"),
    Case("toml", HQ_HEAD, 'unit = "hq"\nrole = 1\nperson = "smith"', 48,
         "role #2: 'role' must be a string, got an integer"),
    Case("toml", HQ_HEAD, 'unit = "eng"\nrole = "head"\nperson = "suzuki"', 46,
         "role #2: duplicate role: 'suzuki' already holds 'head' in 'eng' (first at line 41)"),
    Case("toml", '[[roles]]\nunit = "eng"', '[[role]]\nunit = "eng"', 41,
         "unknown top-level key 'role' (did you mean 'roles'?)"),
    Case("toml", R2, R2.replace('"proxy"', '"deputy"'), 62,
         "relation #2: 'kind' must be 'responsible' or 'proxy', got 'deputy'"),
    Case("toml", R2, R2.replace('kind = "proxy"', "# no kind"), 59,
         "relation #2: missing required key 'kind'"),
    Case("toml", R1, R1.replace('approver = "suzuki"\n', ""), 51,
         "relation #1: missing required key 'approver'"),
    Case("toml", "valid_to = 2026-12-31", 'valid_to = "2026-13-01"', 56,
         "relation #1: 'valid_to' is not a valid date: '2026-13-01'"),
    Case("toml", "valid_to = 2026-12-31", 'valid_to = "31/12/2026"', 56,
         "'valid_to' must be a date (YYYY-MM-DD), got '31/12/2026'"),
    Case("toml", "valid_from = 2026-04-01", "valid_from = 20260401", 63,
         "relation #2: 'valid_from' must be a date (YYYY-MM-DD), got an integer"),
    Case("toml", "valid_from = 2026-04-01", "valid_from = 2026-04-01T09:00:00", 63,
         "'valid_from' must be a date (YYYY-MM-DD), got a date-time"),
    Case("toml", "valid_from = 2026-04-01\n", "", 59,
         "relation #2: missing required key 'valid_from'"),
    Case("toml", "valid_to = 2026-12-31", "valid_to = 2025-12-31", 56,
         "relation #1: valid_to 2025-12-31 is before valid_from 2026-01-01"),
    Case("toml", R3, R3.replace('unit = "eng"', 'unit = "eng"\nperson = "tanaka"'), 67,
         "relation #3: give either 'person' or 'unit' as the approval object, not both"),
    Case("toml", R1, R1.replace('person = "tanaka"\n', ""), 51,
         "relation #1: missing the approval object: give 'person' or 'unit'"),
    Case("toml", R1, R1.replace('approver = "suzuki"', 'approver = "tanaka"'), 52,
         "relation #1: 'tanaka' cannot be their own approver"),
    Case("toml", R3, R3.replace('"eng"', '"ops"'), 67, "relation #3: unknown unit 'ops'"),
    Case("toml", R3, R3.replace('"responsible"', '"proxy"'), 67,
         "relation #3: a proxy stands in for a person: give 'person', not 'unit'"),
    Case("toml", R2, 'approver = "suzuki"\nperson = "tanaka"\nkind = "responsible"', 59,
         "relation #2: suzuki->person tanaka responsible 2026-04-01.. overlaps relation #1 "
         "(line 51)"),
    Case("toml", 'registered_by = "smith"', 'registered_by = "Mr Smith"', 57,
         "relation #1: 'registered_by' must be 1-64 letters"),
    Case("toml", R2, R2 + '\nnote = "holiday"', 63,
         "relation #2: unknown key 'note'"),
    # ---- JSON: located by scanning the text
    Case("json", '"person": "smith"', '"person": "smyth"', 23,
         "role #2: unknown person 'smyth'"),
    Case("json", '"role": "head", "person": "suzuki"}', '"role": "head"}', 19,
         "role #1: missing required key 'person'"),
    Case("json", '"unit": "hq",\n      "role": "head",\n      "person": "smith"',
         '"unit": "eng",\n      "role": "head",\n      "person": "suzuki"', 20,
         "duplicate role: 'suzuki' already holds 'head' in 'eng' (first at line 19)"),
    Case("json", '"valid_to": "2026-12-31"', '"valid_to": "2026-02-30"', 32,
         "relation #1: 'valid_to' is not a valid date: '2026-02-30'"),
    Case("json", '"valid_to": "2026-12-31"', '"valid_to": "2025-12-31"', 32,
         "valid_to 2025-12-31 is before valid_from 2026-01-01"),
    Case("json", '"kind": "responsible",\n', '"kind": "Responsible",\n', 30,
         "relation #1: 'kind' must be 'responsible' or 'proxy', got 'Responsible'"),
    Case("json", '"approver": "suzuki"', '"approver": "tanaka"', 28,
         "'tanaka' cannot be their own approver"),
    Case("json", '"registered_by": "smith"', '"registered_by": "smith", "note": 1', 33,
         "relation #1: unknown key 'note'"),
    Case("json", J_R2, J_R2.replace('"proxy", ', '"proxy", "unit": "eng", '), 35,
         "relation #2: give either 'person' or 'unit'"),
    Case("json", J_R2, '"tanaka"', 35, "relation #2 must be a table, got a string"),
    Case("json", '"valid_to": "2026-12-31"', '"valid_to": null', 32,
         "'valid_to' must be a date (YYYY-MM-DD), got null"),
    Case("json", J_ROLES, '"roles": {"unit": "eng"},\n', 18,
         "'roles' must be a list of tables"),
    # ---- YAML: node marks; dates are read as text and checked by the validator
    Case("yaml", "  - {unit: eng, role: head, person: suzuki}",
         "  - {unit: ops, role: head, person: suzuki}", 12, "role #1: unknown unit 'ops'"),
    Case("yaml", "    role: head\n    person: smith", "    role: [head]\n    person: smith", 14,
         "role #2: 'role' must be a string, got a list"),
    Case("yaml", "  - unit: hq\n    role: head\n    person: smith",
         "  - unit: eng\n    role: head\n    person: suzuki", 13,
         "role #2: duplicate role: 'suzuki' already holds 'head' in 'eng' (first at line 12)"),
    Case("yaml", "valid_to: 2026-12-31", "valid_to: 2026-02-30", 21,
         "relation #1: 'valid_to' is not a valid date: '2026-02-30'"),
    Case("yaml", "valid_to: 2026-12-31", "valid_to: 2026-12-31 10:00:00", 21,
         "'valid_to' must be a date (YYYY-MM-DD), got '2026-12-31 10:00:00'"),
    Case("yaml", "valid_to: 2026-12-31", "valid_to: 2025-06-30", 21,
         "relation #1: valid_to 2025-06-30 is before valid_from 2026-01-01"),
    Case("yaml", Y_R3, Y_R3.replace("responsible", "proxy"), 24,
         "relation #3: a proxy stands in for a person"),
    Case("yaml", Y_R2, Y_R2.replace("person: suzuki, ", ""), 23,
         "relation #2: missing the approval object"),
    Case("yaml", "    registered_by: smith", "    registered_by: smith\n    registerd: x", 23,
         "relation #1: unknown key 'registerd' (did you mean 'registered_by'?)"),
    Case("yaml", Y_R2, Y_R2.replace("kind: proxy", "kind: 1"), 23,
         "relation #2: 'kind' must be a string, got an integer"),
    Case("yaml", "relations:\n", "relation:\n", 16,
         "unknown top-level key 'relation' (did you mean 'relations'?)"),
    # ---- CSV: the physical line of the row
    Case("csv", C_HQ, "role,,,,,,hr,,head,smith,,,,,", 10, "role #2: unknown unit 'hr'"),
    Case("csv", C_HQ, "role,,,,,,hq,,,smith,,,,,", 10, "role #2: missing required key 'role'"),
    Case("csv", C_HQ, "role,,,,,,hq,,head,smith,tanaka,,,,", 10,
         "role #2: unknown key 'approver'"),
    Case("csv", C_HQ, "role,,,,,,hq,,head,smith,,proxy,,,", 10,
         "role #2: unknown key 'relation_kind'"),
    Case("csv", C_HQ, "role,,,,,,eng,,head,suzuki,,,,,", 10,
         "duplicate role: 'suzuki' already holds 'head' in 'eng' (first at line 9)"),
    Case("csv", C_R2, "relation,,,,,,,,,suzuki,tanaka,deputy,2026-04-01,,", 12,
         "relation #2: 'kind' must be 'responsible' or 'proxy', got 'deputy'"),
    Case("csv", C_R2, "relation,,,,,,,,,suzuki,tanaka,proxy,2026-4-1,,", 12,
         "'valid_from' must be a date (YYYY-MM-DD), got '2026-4-1'"),
    Case("csv", C_R2, "relation,,,,,,,,,suzuki,tanaka,proxy,2026-04-01,2026-03-31,", 12,
         "relation #2: valid_to 2026-03-31 is before valid_from 2026-04-01"),
    Case("csv", C_R3, "relation,,,,,,eng,,,tanaka,smith,responsible,2026-01-01,,", 13,
         "relation #3: give either 'person' or 'unit'"),
    Case("csv", C_R3, "relation,x,,,,,eng,,,,smith,responsible,2026-01-01,,", 13,
         "relation #3: unknown key 'id'"),
    Case("csv", C_R3, "relation,,,,,,eng,,,,,responsible,2026-01-01,,", 13,
         "relation #3: missing required key 'approver'"),
    Case("csv", C_R2, "relation,,,,,,,,,tanaka,tanaka,proxy,2026-04-01,,", 12,
         "relation #2: 'tanaka' cannot be their own approver"),
    Case("csv", C_R2, "relations,,,,,,,,,suzuki,tanaka,proxy,2026-04-01,,", 12,
         "unknown kind 'relations' (expected one of unit, position, person, role, relation)"),
]
# fmt: on


@pytest.mark.parametrize("case", CASES, ids=str)
def test_error_names_the_offending_line(case: Case) -> None:
    errors = errors_of(case.fmt, edit(BASES[case.fmt], case.old, case.new))
    prefix = f"org:{case.line}: "
    assert [e for e in errors if e.startswith(prefix) and case.fragment in e], errors
    assert len(errors) == 1, errors


def test_every_problem_is_reported_in_line_order() -> None:
    text = edit(POSTS_TOML, HQ_HEAD, 'unit = "hr"\nrole = "head"\nperson = "smith"')  # 47
    text = edit(text, "valid_to = 2026-12-31", "valid_to = 2025-12-31")  # 56
    text = edit(text, 'kind = "proxy"', 'kind = "deputy"')  # 62
    text = edit(text, R3, R3.replace('"eng"', '"ops"'))  # 67
    assert [e.split(":")[1] for e in errors_of("toml", text)] == ["47", "56", "62", "67"]
