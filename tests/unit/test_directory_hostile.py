"""A hostile or broken directory file is refused whole with a readable DirectoryFileError,
quickly: the same YAML bounds as request forms (daemon.parsing.safeyaml), numbers that
Python's int() would refuse or that no column holds, and a size limit."""

from __future__ import annotations

import time

import pytest

from daemon.directory.loader import MAX_DIRECTORY_BYTES, DirectoryFileError, parse_directory
from tests.unit.test_directory_loader import BASE_CSV, BASE_YAML, EXPECTED_BASE, edit


def refused(fmt: str, text: str | bytes) -> list[str]:
    data = text.encode("utf-8") if isinstance(text, str) else text
    started = time.monotonic()
    with pytest.raises(DirectoryFileError) as info:
        parse_directory(data, fmt, "org")
    assert time.monotonic() - started < 5, "a hostile file must be refused quickly"
    assert info.value.errors and all(e.startswith("org") for e in info.value.errors)
    assert all(len(e) < 300 for e in info.value.errors), "errors quote values shortened"
    return info.value.errors


def doubling(levels: int) -> str:
    """Each anchor lists the previous one twice: 2 aliases a level, 2**levels paths."""
    lines = ["l0: &l0 [x, x]"]
    lines += [f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}]" for i in range(1, levels)]
    return BASE_YAML + "\n".join(lines) + "\n"


NINES = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi",
                                                               strict=True))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BASE_YAML + NINES, "YAML refused: more than 64 aliases (*name)"),
        (doubling(30), "YAML refused: aliases (*name) repeat more than 10,000 values"),
        ("units: " + "[" * 50_000, "YAML refused: nested more than 16 levels deep"),
        ("units:\n" + "".join("  " * i + "- \n" for i in range(1, 2000)),
         "YAML refused: nested more than 16 levels deep"),
        ("units: &u [*u]\n", "YAML refused: an alias refers to a node that contains it"),
        ("units: &u {a: *u}\n", "YAML refused: an alias refers to a node that contains it"),
    ],
)
def test_hostile_yaml_is_refused(text: str, expected: str) -> None:
    errors = refused("yaml", text)
    assert len(errors) == 1 and expected in errors[0], errors


def test_yaml_anchors_within_the_bounds_still_load() -> None:
    """The positive control: a shared value or two is fine, as in a request form."""
    text = edit(BASE_YAML, "  - id: hq\n", "  - id: &hq hq\n")
    text = edit(text, "parent: hq", "parent: *hq")
    text = edit(text, "    unit: hq", "    unit: *hq")
    assert parse_directory(text.encode(), "yaml", "org") == EXPECTED_BASE


HUGE = "9" * 5000  # past Python's 4,300-digit int() limit


@pytest.mark.parametrize(
    ("fmt", "text", "expected"),
    [
        ("json", '{"positions": [{"id": "p", "name": "P", "rank": ' + HUGE + "}]}",
         "org: JSON error: a number has more than 4,300 digits"),
        ("toml", f'[[positions]]\nid = "p"\nname = "P"\nrank = {HUGE}\n',
         "org: TOML syntax error: a number has more than 4,300 digits"),
        ("toml", "units = " + "[" * 5000 + "]" * 5000 + "\n",
         "org: TOML syntax error: arrays or tables nested too deeply"),
        ("json", '{"units": ' + "[" * 100_000 + "]" * 100_000 + "}",
         "org: JSON nested too deeply"),
    ],
)
def test_numbers_and_nesting_no_parser_survives(fmt: str, text: str, expected: str) -> None:
    assert refused(fmt, text) == [expected]


@pytest.mark.parametrize(
    ("fmt", "rank", "expected"),
    [
        ("yaml", "1" + "0" * 30, "'rank' must be between -1,000,000 and 1,000,000"),
        ("yaml", "-" + "9" * 4000, "'rank' must be between -1,000,000 and 1,000,000"),
        ("csv", HUGE, "'rank' must be an integer, got '" + "9" * 58 + "…"),
        ("csv", "10000001", "'rank' must be between -1,000,000 and 1,000,000"),
    ],
)
def test_ranks_no_column_holds_are_refused(fmt: str, rank: str, expected: str) -> None:
    if fmt == "yaml":
        text = edit(BASE_YAML, "rank: 20", f"rank: {rank}")
    else:
        text = edit(BASE_CSV, "position,boss,Boss,,,20,", f"position,boss,Boss,,,{rank},")
    errors = refused(fmt, text)
    assert len(errors) == 1 and expected in errors[0], errors


def test_oversized_file_is_refused_before_parsing() -> None:
    data = BASE_YAML.encode() + b"#" * (MAX_DIRECTORY_BYTES - len(BASE_YAML.encode()) + 1)
    assert refused("yaml", data) == [
        f"org: file is {MAX_DIRECTORY_BYTES + 1:,} bytes; a directory file may be at most "
        f"{MAX_DIRECTORY_BYTES:,}"]
