"""Numbers in text people send: bounded before int() sees them (daemon.parsing.numbers),
in TOML (condition sets by mail, rule and directory files) and in MIME parameters."""

from __future__ import annotations

import tomllib

import pytest

from daemon.parsing.message import parse_mail
from daemon.parsing.numbers import MAX_DIGITS, bounded_int, loads_toml


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), (" 42 ", 42), ("9" * MAX_DIGITS, 10**MAX_DIGITS - 1),
     ("9" * (MAX_DIGITS + 1), None), ("9" * 5000, None), ("", None), ("-3", None),
     ("３", None), ("1e3", None), ("٣", None)],
)
def test_bounded_int(text: str, expected: int | None) -> None:
    assert bounded_int(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [("a = " + "9" * 5000, "a number has more than 4,300 digits"),
     ("a = " + "[" * 5000 + "]" * 5000, "arrays or tables nested too deeply"),
     ("a = ", "Invalid value (at end of document)")],
)
def test_loads_toml_refuses_only_with_toml_errors(text: str, why: str) -> None:
    """tomllib raises ValueError / RecursionError for these; callers catch TOMLDecodeError."""
    with pytest.raises(tomllib.TOMLDecodeError) as info:
        loads_toml(text)
    assert str(info.value) == why


def test_loads_toml_reads_ordinary_text() -> None:
    assert loads_toml('name = "x"\nlimit = 1_900_000\n') == {"name": "x", "limit": 1900000}


def test_rfc2231_section_numbers_past_the_int_limit_keep_the_attachment() -> None:
    """A filename*<5000 digits> parameter used to raise inside the parser and the part was
    lost; now the bogus section is ignored and the file is kept under the name it has."""
    raw = (b"From: a@b.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/pdf\r\n"
           b"Content-Disposition: attachment; filename*0=quote; filename*" + b"9" * 5000
           + b"=.pdf\r\n\r\nxx\r\n--b--\r\n")
    assert [a.filename for a in parse_mail(raw).attachments] == ["quote"]
