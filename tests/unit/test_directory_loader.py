"""Tests for the organisation directory file loader (parsing + validation only)."""

from __future__ import annotations

import csv
import datetime
import io
import json
import pathlib
import tomllib
from dataclasses import dataclass

import pytest
import yaml

from daemon.directory.loader import (
    DirectoryData,
    DirectoryFileError,
    PersonRecord,
    Position,
    RelationRecord,
    RoleRecord,
    Unit,
    email_problem,
    load_directory,
    parse_directory,
)

SAMPLE = pathlib.Path(__file__).resolve().parents[2] / "samples" / "organisation.toml"
CSV_HEADER = "kind,id,name,name_ja,parent,rank,emails,locale,unit,position,active"

# Four hand-written files describing the same small organisation. Line numbers
# in the error tables below refer to these texts, so keep their layout stable.
BASE_TOML = """\
[[units]]
id = "hq"
name = "Head Office"

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
name = "Taro Tanaka"
name_ja = "田中 太郎"
emails = ["tanaka@example.com"]
locale = "ja"
unit = "eng"
position = "staff"

[[people]]
id = "smith"
name = "John Smith"
email = "Smith@Example.com"
unit = "hq"
position = "boss"
active = false
"""

BASE_JSON = """\
{
  "units": [
    {"id": "hq", "name": "Head Office"},
    {
      "id": "eng",
      "name": "Engineering",
      "parent": "hq"
    }
  ],
  "positions": [
    {"id": "staff", "name": "Staff", "rank": 10},
    {"id": "boss", "name": "Boss", "rank": 20}
  ],
  "people": [
    {
      "id": "tanaka",
      "name": "Taro Tanaka",
      "name_ja": "田中 太郎",
      "emails": [
        "tanaka@example.com"
      ],
      "locale": "ja",
      "unit": "eng",
      "position": "staff"
    },
    {"id": "smith", "name": "John Smith", "email": "Smith@Example.com",
     "unit": "hq", "position": "boss", "active": false}
  ]
}
"""

BASE_YAML = """\
units:
  - id: hq
    name: Head Office
  - id: eng
    name: Engineering
    parent: hq
positions:
  - {id: staff, name: Staff, rank: 10}
  - id: boss
    name: Boss
    rank: 20
people:
  - id: tanaka
    name: Taro Tanaka
    name_ja: 田中 太郎
    emails:
      - tanaka@example.com
    locale: ja
    unit: eng
    position: staff
  - id: smith
    name: John Smith
    email: Smith@Example.com
    unit: hq
    position: boss
    active: false
"""

BASE_CSV = f"""\
{CSV_HEADER}
unit,hq,Head Office,,,,,,,,
unit,eng,Engineering,,hq,,,,,,
position,staff,Staff,,,10,,,,,
position,boss,Boss,,,20,,,,,
person,tanaka,Taro Tanaka,田中 太郎,,,tanaka@example.com,ja,eng,staff,
person,smith,John Smith,,,,Smith@Example.com,,hq,boss,false
"""

BASES = {"toml": BASE_TOML, "json": BASE_JSON, "yaml": BASE_YAML, "csv": BASE_CSV}

EXPECTED_BASE = DirectoryData(
    units=(
        Unit("hq", "Head Office", "Head Office", None),
        Unit("eng", "Engineering", "Engineering", "hq"),
    ),
    positions=(Position("staff", "Staff", "Staff", 10), Position("boss", "Boss", "Boss", 20)),
    people=(
        PersonRecord(
            id="tanaka",
            name="Taro Tanaka",
            name_ja="田中 太郎",
            emails=("tanaka@example.com",),
            locale="ja",
            unit="eng",
            position="staff",
            active=True,
        ),
        PersonRecord(
            id="smith",
            name="John Smith",
            name_ja="John Smith",
            emails=("smith@example.com",),
            locale="en",
            unit="hq",
            position="boss",
            active=False,
        ),
    ),
)


def parse(fmt: str, text: str, source: str = "org") -> DirectoryData:
    return parse_directory(text.encode("utf-8"), fmt, source)


def errors_of(fmt: str, text: str, source: str = "org") -> list[str]:
    with pytest.raises(DirectoryFileError) as info:
        parse(fmt, text, source)
    assert info.value.errors, "a refused file must say why"
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


def edit(text: str, old: str, new: str) -> str:
    """Replace exactly one occurrence, so a typo in a test case cannot go unnoticed."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


# ----------------------------------------------------------------- sample


def test_sample_loads_with_expected_shape() -> None:
    data = load_directory(SAMPLE)
    assert [(u.id, u.name, u.name_ja, u.parent) for u in data.units] == [
        ("hq", "Head Office", "本社", None),
        ("eng", "Engineering", "技術部", "hq"),
        ("sales", "Sales", "営業部", "hq"),
        ("accounting", "Accounting", "経理部", "hq"),
        ("procurement", "Procurement", "購買部", "hq"),
        ("design", "Design", "設計課", "eng"),
    ]
    assert [(p.id, p.name_ja, p.rank) for p in data.positions] == [
        ("staff", "担当", 10),
        ("chief", "主任", 20),
        ("section_manager", "課長", 30),
        ("department_manager", "部長", 40),
        ("director", "取締役", 50),
    ]
    placement = {(p.unit, p.position): p.id for p in data.people}
    assert placement == {
        ("eng", "staff"): "tanaka",
        ("eng", "chief"): "sato",
        ("eng", "department_manager"): "suzuki",
        ("sales", "staff"): "smith",
        ("sales", "chief"): "takahashi",
        ("sales", "section_manager"): "brown",
        ("sales", "department_manager"): "watanabe",
        ("hq", "director"): "yamamoto",
        ("hq", "staff"): "admin",
        ("accounting", "staff"): "kato",
        ("accounting", "section_manager"): "ito",
        ("procurement", "staff"): "clark",
        ("procurement", "department_manager"): "mori",
        ("design", "staff"): "nakamura",
    }
    people = {p.id: p for p in data.people}
    assert people["smith"].name_ja == "ジョン・スミス" and people["smith"].locale == "en"
    assert people["brown"].name == "Emily Brown" and people["brown"].locale == "en"
    assert people["admin"].name == "Ringi Administrator"
    assert people["tanaka"].locale == "ja" and people["tanaka"].name_ja == "田中 太郎"
    assert people["clark"].locale == "en" and people["clark"].name == "Olivia Clark"
    assert (people["kato"].name_ja, people["ito"].name_ja) == ("加藤 健", "伊藤 真理")
    assert (people["mori"].name_ja, people["nakamura"].name_ja) == ("森 大輔", "中村 翔")
    assert all(p.active for p in data.people)
    assert all(len(p.emails) == 1 and p.emails[0] == f"{p.id}@example.com" for p in data.people)


def test_sample_roles_and_relations() -> None:
    data = load_directory(SAMPLE)
    assert set(data.roles) == {
        RoleRecord("eng", "head", "suzuki"),
        RoleRecord("sales", "head", "watanabe"),
        RoleRecord("hq", "head", "yamamoto"),
        RoleRecord("accounting", "head", "ito"),
        RoleRecord("procurement", "head", "mori"),
        RoleRecord("accounting", "accounting_staff", "kato"),
        RoleRecord("accounting", "accounting_manager", "ito"),
        RoleRecord("procurement", "buyer", "clark"),
        RoleRecord("procurement", "purchasing_manager", "mori"),
    }
    assert len(data.roles) == 9
    # design has no head of its own: finding one means climbing to eng
    assert not [r for r in data.roles if r.unit == "design"]
    start, end = datetime.date(2026, 1, 1), datetime.date(2027, 12, 31)
    assert data.relations == (
        RelationRecord("watanabe", "unit", "sales", "responsible", start, end, "admin"),
        RelationRecord("takahashi", "person", "brown", "proxy", start, end, "admin"),
        RelationRecord("sato", "person", "suzuki", "proxy", start, end, "admin"),
    )


def test_sample_engineering_section_manager_is_vacant() -> None:
    data = load_directory(SAMPLE)
    assert not [p for p in data.people if p.unit == "eng" and p.position == "section_manager"]
    # ...while the position itself exists and is filled elsewhere.
    holders = {p.id: p.unit for p in data.people if p.position == "section_manager"}
    assert holders == {"brown": "sales", "ito": "accounting"}
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    header = "\n".join(line for line in lines[: lines.index("")] if line.startswith("#"))
    assert "vacant" in header.lower() and "Engineering (eng)" in header, header


POSTS_CSV_COLUMNS = "role,person,approver,relation_kind,valid_from,valid_to,registered_by"


def _sample_as_csv(raw: dict[str, list[dict[str, object]]]) -> str:
    out = io.StringIO()
    columns = [*CSV_HEADER.split(","), *POSTS_CSV_COLUMNS.split(",")]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    sections = (("units", "unit"), ("positions", "position"), ("people", "person"),
                ("roles", "role"), ("relations", "relation"))  # fmt: skip
    for section, kind in sections:
        for entry in raw[section]:
            row = {k: (";".join(v) if isinstance(v, list) else v) for k, v in entry.items()}
            if kind == "relation":
                row["relation_kind"] = row.pop("kind")
            writer.writerow({"kind": kind, **row})
    return out.getvalue()


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml", ".csv"])
def test_sample_in_other_formats_loads_identically(tmp_path: pathlib.Path, suffix: str) -> None:
    raw = tomllib.loads(SAMPLE.read_text(encoding="utf-8"))
    if suffix == ".json":
        text = json.dumps(raw, ensure_ascii=False, indent=2, default=str)  # dates as text
    elif suffix == ".csv":
        text = _sample_as_csv(raw)
    else:
        text = yaml.safe_dump(raw, allow_unicode=True, sort_keys=False)
    target = tmp_path / f"organisation{suffix}"
    target.write_text(text, encoding="utf-8")
    assert load_directory(target) == load_directory(SAMPLE)


# ------------------------------------------------------ equivalent inputs


@pytest.mark.parametrize("fmt", sorted(BASES))
def test_hand_written_inputs_load_to_same_data(tmp_path: pathlib.Path, fmt: str) -> None:
    target = tmp_path / f"org.{fmt}"
    target.write_text(BASES[fmt], encoding="utf-8")
    assert load_directory(target) == EXPECTED_BASE


@pytest.mark.parametrize("fmt", sorted(BASES))
def test_utf8_bom_is_accepted(fmt: str) -> None:
    data = b"\xef\xbb\xbf" + BASES[fmt].encode("utf-8")
    assert parse_directory(data, fmt, "org") == EXPECTED_BASE


def test_active_true_is_explicitly_accepted() -> None:
    text = edit(BASE_TOML, "active = false", "active = true")
    assert parse("toml", text).people[1].active is True


def test_ids_may_repeat_across_sections() -> None:
    text = edit(BASE_TOML, 'id = "boss"', 'id = "eng"')
    text = edit(text, 'position = "boss"', 'position = "eng"')
    assert parse("toml", text).positions[1].id == "eng"


def test_csv_emails_are_split_on_semicolons() -> None:
    text = edit(BASE_CSV, "Smith@Example.com,", '"Smith@Example.com; js@example.org ;",')
    assert parse("csv", text).people[1].emails == ("smith@example.com", "js@example.org")


# ------------------------------------------------------- line-level errors


@dataclass(frozen=True)
class Case:
    fmt: str
    old: str
    new: str
    line: int | None  # None: the error is reported without a line
    fragment: str
    only: bool = True  # the error must be the only one (no spurious follow-ups)

    def __str__(self) -> str:
        return f"{self.fmt}:{self.line}:{self.fragment}"


# fmt: off
E = '["tanaka@example.com"]'
CASES = [
    # ---- TOML: entries map to [[section]] headers, keys to their own line
    Case("toml", 'parent = "hq"', 'parnet = "hq"', 8,
         "unknown key 'parnet' (did you mean 'parent'?)"),
    Case("toml", 'name = "Boss"', "# nameless", 15,
         "position 'boss': missing required key 'name'"),
    Case("toml", 'name = "Boss"', 'name = ""', 17, "'name' must not be empty"),
    Case("toml", "rank = 20", "# no rank", 15, "missing required key 'rank'"),
    Case("toml", "rank = 20", 'rank = "20"', 18, "'rank' must be an integer"),
    Case("toml", "rank = 20", "rank = true", 18, "'rank' must be an integer"),
    Case("toml", "rank = 20", "rank = 10", 18,
         "rank 10 is already used by position 'staff' (line 13)"),
    Case("toml", "active = false", 'active = "no"', 35, "'active' must be a boolean"),
    Case("toml", f"emails = {E}", 'emails = "tanaka@example.com"', 24,
         "'emails' must be a list of strings"),
    Case("toml", f"emails = {E}", "emails = [1]", 24, "email addresses must be strings"),
    Case("toml", f"emails = {E}", "emails = []", 24, "'emails' must not be empty"),
    Case("toml", f"emails = {E}", "# no emails", 20, "missing required key 'emails'"),
    Case("toml", 'id = "tanaka"', 'id = "tanaka san"', 21, "id must be 1-64"),
    Case("toml", 'id = "tanaka"', 'id = "-tanaka"', 21, "id must be 1-64"),
    Case("toml", 'id = "smith"', 'id = "tanaka"', 30, "duplicate id 'tanaka' (first at line 20)"),
    Case("toml", 'email = "Smith@Example.com"', 'email = "TANAKA@example.COM"', 32,
         "email 'tanaka@example.com' is already used by person 'tanaka' (line 24)"),
    Case("toml", 'email = "Smith@Example.com"', 'email = "smith@@example.com"', 32,
         "invalid email address 'smith@@example.com'"),
    Case("toml", 'locale = "ja"', 'locale = "fr"', 25, "locale must be 'en' or 'ja'"),
    Case("toml", 'parent = "hq"', 'parent = "hqq"', 8, "unknown parent unit 'hqq'"),
    Case("toml", 'name = "Head Office"\n', 'name = "Head Office"\nparent = "eng"', 4,
         "unit tree has a cycle: hq -> eng -> hq"),
    Case("toml", 'parent = "hq"', 'parent = "eng"', 8, "unit tree has a cycle: eng -> eng"),
    Case("toml", 'unit = "eng"', 'unit = "sales"', 26, "person 'tanaka': unknown unit 'sales'"),
    Case("toml", 'position = "staff"', 'position = "intern"', 27, "unknown position 'intern'"),
    Case("toml", "active = false", 'emails = ["js@example.com"]', 32,
         "give either 'email' or 'emails', not both"),
    Case("toml", '[[units]]\nid = "hq"', 'title = "x"\n[[units]]\nid = "hq"', 1,
         "unknown top-level key 'title'"),
    # ---- JSON: entries and keys located by scanning the text
    Case("json", '"parent": "hq"', '"parnet": "hq"', 7, "unit 'eng': unknown key 'parnet'"),
    Case("json", '"rank": 20', '"rank": "20"', 12, "'rank' must be an integer"),
    Case("json", '"rank": 20', '"rank": 10', 12,
         "rank 10 is already used by position 'staff' (line 11)"),
    Case("json", '"tanaka@example.com"\n', '"tanaka@"\n', 20, "invalid email address 'tanaka@'"),
    Case("json", '"email": "Smith@Example.com"', '"email": "Tanaka@Example.com"', 26,
         "already used by person 'tanaka' (line 20)"),
    Case("json", '"unit": "eng"', '"unit": "sales"', 23, "unknown unit 'sales'"),
    Case("json", '"active": false', '"active": "false"', 27, "'active' must be a boolean"),
    Case("json", '"name": "Head Office"}', '"name": "Head Office", "parent": "eng"}', 3,
         "unit tree has a cycle: hq -> eng -> hq"),
    Case("json", '"name": "Engineering",', '"name": "Engineering", "name": "Eng",', 6,
         "duplicate key 'name'"),
    Case("json", '{"id": "hq", "name": "Head Office"}', '"hq"', 3,
         "unit #1 must be a table, got a string", only=False),
    Case("json", '"id": "smith"', '"id": "tanaka"', 26, "duplicate id 'tanaka' (first at line 15)"),
    # ---- YAML: node marks
    Case("yaml", "    parent: hq", "    parnet: hq", 6, "unknown key 'parnet'"),
    Case("yaml", "rank: 20", "rank: twenty", 11, "'rank' must be an integer, got 'twenty'"),
    Case("yaml", "locale: ja", "locale: fr", 18, "locale must be 'en' or 'ja', got 'fr'"),
    Case("yaml", "- id: smith", "- id: tanaka", 21, "duplicate id 'tanaka' (first at line 13)"),
    Case("yaml", "    name: Boss", "    # nameless", 9, "missing required key 'name'"),
    Case("yaml", "- tanaka@example.com", "- tanaka at example.com", 17, "contains whitespace"),
    Case("yaml", "name_ja: 田中 太郎", "name: Taro", 15, "duplicate key 'name'"),
    Case("yaml", "active: false", "active: maybe", 26, "'active' must be a boolean"),
    Case("yaml", "- id: smith", "- id: 42", 21, "'id' must be a string, got an integer"),
    Case("yaml", "unit: hq", "unit: nowhere", 24, "person 'smith': unknown unit 'nowhere'"),
    # a block value starts on the next line; the key's own line is the one to report
    Case("yaml", "  - tanaka@example.com", "  address: tanaka@example.com", 16,
         "'emails' must be a list of strings, got a table"),
    Case("yaml", "{id: staff, name: Staff, rank: 10}", "{id: staff, name: Staff, rank: 20}", 11,
         "rank 20 is already used by position 'staff' (line 8)"),
    # ---- CSV: physical line of the row
    Case("csv", "position,boss,Boss,,,20,", "position,boss,Boss,,,twenty,", 5,
         "'rank' must be an integer, got 'twenty'"),
    Case("csv", "hq,boss,false", "hq,boss,maybe", 7, "'active' must be a boolean"),
    Case("csv", "田中 太郎,,,", "田中 太郎,,5,", 6, "person 'tanaka': unknown key 'rank'"),
    Case("csv", "unit,eng,", "dept,eng,", 3, "unknown kind 'dept'", only=False),
    Case("csv", CSV_HEADER, CSV_HEADER + ",colour", 1, "unknown CSV column 'colour'"),
    Case("csv", "position,boss,Boss,,,20,,,,,", "position,boss,Boss,,,20,,,,,,,", 5,
         "row has 13 cells but the header has 11"),
    Case("csv", ",ja,eng,staff,", ",jp,eng,staff,", 6, "locale must be 'en' or 'ja', got 'jp'"),
]
# fmt: on
@pytest.mark.parametrize("case", CASES, ids=str)
def test_error_names_the_offending_line(case: Case) -> None:
    errors = errors_of(case.fmt, edit(BASES[case.fmt], case.old, case.new), source="dir/org.x")
    prefix = "dir/org.x:" if case.line is None else f"dir/org.x:{case.line}: "
    matching = [e for e in errors if e.startswith(prefix) and case.fragment in e]
    assert matching, f"expected {prefix!r}...{case.fragment!r} in {errors}"
    if case.only:
        assert len(errors) == 1, errors


def test_every_error_in_a_file_is_reported_in_line_order() -> None:
    text = BASE_TOML
    text = edit(text, 'parent = "hq"', 'parent = "nowhere"')  # line 8
    text = edit(text, "rank = 20", 'rank = "high"')  # line 18
    text = edit(text, 'locale = "ja"', 'locale = "de"')  # line 25
    text = edit(text, "active = false", "colour = 1")  # line 35
    errors = errors_of("toml", text)
    assert [e.split(":")[1] for e in errors] == ["8", "18", "25", "35"]
    assert "unknown parent unit 'nowhere'" in errors[0]
    assert "'rank' must be an integer" in errors[1]
    assert "locale must be" in errors[2]
    assert "unknown key 'colour'" in errors[3]


def test_csv_line_numbers_count_physical_lines() -> None:
    # A quoted cell spanning two lines must not shift the numbers of later rows.
    text = edit(BASE_CSV, "unit,eng,Engineering,", 'unit,eng,"Engi\nneering",')
    text = edit(text, "hq,boss,false", "hq,boss,maybe")
    assert errors_of("csv", text) == [
        "org:8: person 'smith': 'active' must be a boolean, got 'maybe'"
    ]


def test_toml_multiline_strings_do_not_confuse_the_line_finder() -> None:
    # Header- and key-looking lines inside a """string""" are text, not structure.
    text = edit(BASE_TOML, 'name = "Head Office"', 'name = """Head Office\n[[people]]\nunit = 1"""')
    text = edit(text, 'locale = "ja"', 'locale = "fr"')
    assert errors_of("toml", text) == [
        "org:27: person 'tanaka': locale must be 'en' or 'ja', got 'fr'"
    ]


def test_inline_toml_tables_fall_back_to_the_section_line() -> None:
    text = BASE_TOML.replace(
        '[[units]]\nid = "hq"\nname = "Head Office"\n',
        '\nunits = [\n  {id = "hq", name = "HQ", parnet = "x"},\n  {id = "eng", name = "E"},\n]\n',
    ).replace('[[units]]\nid = "eng"\nname = "Engineering"\nparent = "hq"\n', "")
    # No [[units]] headers to count, so the `units =` line is the best that is known.
    expected = "org:2: unit 'hq': unknown key 'parnet' (did you mean 'parent'?)"
    assert errors_of("toml", text) == [expected]


@pytest.mark.parametrize(
    ("fmt", "text", "expected"),
    [
        ("toml", BASE_TOML.split("[[positions]]")[0], "org: at least one position is required"),
        ("toml", "[[positions]]" + BASE_TOML.split("[[positions]]", 1)[1],
         "org: at least one unit is required"),
        ("yaml", "units: []\n" + BASE_YAML.split("\n", 6)[6],
         "org:1: at least one unit is required"),
        ("json", '{"units": {}, "positions": []}', "org:1: 'units' must be a list of tables"),
        ("json", "[]", "org:1: top level must be a table, got a list"),
        ("csv", CSV_HEADER + "\nunit,hq,HQ,,,,,,,,\n", "org: at least one position is required"),
    ],
)  # fmt: skip
def test_sections_are_required(fmt: str, text: str, expected: str) -> None:
    assert expected in errors_of(fmt, text)


@pytest.mark.parametrize("value", ["true", "TRUE", "yes", "1", "false", "No", "0"])
def test_csv_booleans(value: str) -> None:
    text = edit(BASE_CSV, "hq,boss,false", f"hq,boss,{value}")
    assert parse("csv", text).people[1].active is (value.lower() in {"true", "yes", "1"})


# ------------------------------------------------- undecodable / unparsable


@pytest.mark.parametrize("fmt", sorted(BASES))
def test_non_utf8_bytes_are_refused_with_line(fmt: str) -> None:
    data = BASES[fmt].encode("utf-8").replace(b"Head Office", b"Head \xff Office", 1)
    with pytest.raises(DirectoryFileError) as info:
        parse_directory(data, fmt, "org")
    line = BASES[fmt].split("Head Office")[0].count("\n") + 1
    offset = data.index(b"\xff")
    expected = f"org:{line}: file is not valid UTF-8 (byte 0xff at offset {offset})"
    assert info.value.errors == [expected]


def test_shift_jis_is_refused() -> None:
    with pytest.raises(DirectoryFileError, match="not valid UTF-8"):
        parse_directory(BASE_TOML.encode("shift_jis"), "toml", "org")


@pytest.mark.parametrize(
    ("fmt", "old", "new", "expected"),
    [
        ("toml", 'name = "Engineering"', 'name = "Engineering', "org:7: TOML syntax error:"),
        ("toml", 'id = "staff"', 'id = "staff"\nid = "again"', "org:12: TOML syntax error:"),
        ("json", '"parent": "hq"\n', '"parent": "hq",\n', "org:8: JSON syntax error:"),
        ("json", '"locale": "ja",', '"locale": "ja"', "org:23: JSON syntax error: Expecting ','"),
        ("yaml", "    parent: hq", "   parent: hq", "org:6: YAML syntax error:"),
        ("yaml", "rank: 20", "rank: [20", "org:12: YAML syntax error:"),
        ("csv", "unit,eng,Engineering,", 'unit,eng,"Engi"neering,', "org:3: CSV syntax error:"),
        ("csv", CSV_HEADER, CSV_HEADER.replace("kind,", "type,"),
         "org:1: CSV header has no 'kind'"),
    ],
)  # fmt: skip
def test_syntax_errors_are_refused_with_parser_line(
    fmt: str, old: str, new: str, expected: str
) -> None:
    errors = errors_of(fmt, edit(BASES[fmt], old, new))
    assert len(errors) == 1 and errors[0].startswith(expected), errors


@pytest.mark.parametrize("fmt", sorted(BASES))
def test_empty_file_is_refused(fmt: str) -> None:
    assert errors_of(fmt, "  \n") == ["org: file is empty"]


# ------------------------------------------------------------ load_directory


def test_load_directory_uses_path_as_source(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "org.yml"
    target.write_text(edit(BASE_YAML, "locale: ja", "locale: xx"), encoding="utf-8")
    with pytest.raises(DirectoryFileError) as info:
        load_directory(target)
    assert info.value.errors[0].startswith(f"{target}:18: ")


def test_load_directory_refuses_unknown_suffix(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "org.txt"
    target.write_text(BASE_TOML, encoding="utf-8")
    with pytest.raises(DirectoryFileError, match=r"unsupported file type '\.txt'"):
        load_directory(target)


def test_load_directory_reports_missing_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(DirectoryFileError, match="cannot read file"):
        load_directory(tmp_path / "absent.toml")


def test_parse_directory_rejects_unknown_format_name() -> None:
    with pytest.raises(ValueError, match="unknown directory format"):
        parse_directory(b"", "xml", "org")


# ------------------------------------------------------------ email syntax


@pytest.mark.parametrize(
    "address",
    [
        "a@b", "tanaka@example.com", "first.last+tag@sub.example.co.jp", "X_Y@Host",
        "o'brien@example.ie", "tanaka@例え.jp", "ops@mail-1.example.com",
    ],
)  # fmt: skip
def test_valid_email_addresses(address: str) -> None:
    assert email_problem(address) is None


@pytest.mark.parametrize(
    "address",
    [
        "", "plain", "@example.com", "tanaka@", "a@@b.com", "a@b@c.com", "a b@c.com",
        "a@b.com ", "Taro <a@b.com>", "a@b..com", ".a@b.com", "a@b.com.", "a,b@c.com",
        "a(comment)@b.com", '"quoted"@example.com', "a@!", "a@-b.com", "a@b-.com",
        "a@[192.0.2.1]", "a@b_.com",
    ],
)  # fmt: skip
def test_invalid_email_addresses(address: str) -> None:
    assert email_problem(address) is not None
