"""The per-person qualifications in a directory file: optional booleans, checked with lines."""

from __future__ import annotations

import json

import pytest

from daemon.directory.loader import DirectoryFileError, parse_directory

TOML = """\
[[units]]
id = "hq"
name = "HQ"

[[positions]]
id = "staff"
name = "Staff"
rank = 10

[[people]]
id = "a"
name = "A"
email = "a@example.com"
unit = "hq"
position = "staff"
may_register = false
may_approve = true

[[people]]
id = "b"
name = "B"
email = "b@example.com"
unit = "hq"
position = "staff"
"""


def test_toml_gives_them_or_leaves_them_to_the_rank() -> None:
    data = parse_directory(TOML.encode(), "toml", "org.toml")
    a, b = data.people
    assert (a.may_register, a.may_approve) == (False, True)
    assert (b.may_register, b.may_approve) == (None, None)  # absent: by rank


def test_json_the_same() -> None:
    doc = {"units": [{"id": "hq", "name": "HQ"}],
           "positions": [{"id": "staff", "name": "Staff", "rank": 10}],
           "people": [{"id": "a", "name": "A", "email": "a@example.com", "unit": "hq",
                       "position": "staff", "may_approve": False}]}
    (a,) = parse_directory(json.dumps(doc).encode(), "json", "org.json").people
    assert (a.may_register, a.may_approve) == (None, False)


@pytest.mark.parametrize(("value", "shown"), [('"yes"', "'yes'"), ("1", "1"),
                                              ("2026-01-01", "datetime.date(2026, 1, 1)")])
def test_a_value_that_is_not_a_boolean_is_refused_with_its_line(value: str, shown: str) -> None:
    text = TOML.replace("may_approve = true", f"may_approve = {value}")
    with pytest.raises(DirectoryFileError) as err:
        parse_directory(text.encode(), "toml", "org.toml")
    assert err.value.errors == [
        f"org.toml:17: person 'a': 'may_approve' must be a boolean (true or false; omit it "
        f"for the default by rank), got {shown}"]


CSV = """\
kind,id,name,rank,emails,unit,position,may_register,may_approve
unit,hq,HQ,,,,,,
position,staff,Staff,10,,,,,
person,a,A,,a@example.com,hq,staff,no,yes
person,b,B,,b@example.com,hq,staff,,
"""


def test_csv_columns() -> None:
    a, b = parse_directory(CSV.encode(), "csv", "org.csv").people
    assert (a.may_register, a.may_approve) == (False, True)
    assert (b.may_register, b.may_approve) == (None, None)


def test_csv_cell_that_is_not_a_boolean() -> None:
    text = CSV.replace("hq,staff,no,yes", "hq,staff,perhaps,yes")
    with pytest.raises(DirectoryFileError) as err:
        parse_directory(text.encode(), "csv", "org.csv")
    assert err.value.errors == [
        "org.csv:4: person 'a': 'may_register' must be a boolean (true or false; omit it "
        "for the default by rank), got 'perhaps'"]


def test_a_role_row_may_not_carry_them() -> None:
    text = CSV + "role,,,,,hq,,yes,\n"
    with pytest.raises(DirectoryFileError) as err:
        parse_directory(text.encode(), "csv", "org.csv")
    assert any(e.startswith("org.csv:6: ") and "may_register" in e for e in err.value.errors)
