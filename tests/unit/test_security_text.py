"""The shared table of characters that act instead of showing, and its operations."""

from __future__ import annotations

import pytest

from daemon.security.text import (
    escape_controls,
    first_control,
    has_controls,
    one_line,
    replace_surrogates,
    strip_controls,
    strip_unicode_other,
)

ESC_TITLE = "\x1b]0;owned\x07report"  # OSC: retitles the terminal, ended by BEL
CLEAR = "\x1b[2J\x1b[Hok"  # CSI: clears the screen, moves the cursor home
C1_CSI = "a\x9b31mred"  # the one-character CSI
RLO = "invoice_\u202egpj.exe"  # shows as invoice_exe.jpg
LINE_SEP = "one\u2028two\u2029three"
SURROGATE = "caf\udce9 \ud800"


@pytest.mark.parametrize(("text", "keep", "out"), [
    (ESC_TITLE, "", "]0;ownedreport"),
    (CLEAR, "", "[2J[Hok"),
    (C1_CSI, "", "a31mred"),
    ("a\x7fb\x00c\x85d", "", "abcd"),
    ("tab\tline\nCR\r", "\t\n", "tab\tline\nCR"),
    ("tab\tline\n", "\t", "tab\tline"),
    (RLO, "", RLO),  # bidi is not a control character: strip_controls keeps it
    (LINE_SEP, "", LINE_SEP),
    ("日本語 ok", "", "日本語 ok"),
])
def test_strip_controls(text: str, keep: str, out: str) -> None:
    assert strip_controls(text, keep=keep) == out


@pytest.mark.parametrize(("text", "keep", "also", "first"), [
    ("plain text", "", "", None),
    (ESC_TITLE, "", "", "\x1b"),
    ("bell\x07", "", "", "\x07"),
    (C1_CSI, "", "", "\x9b"),
    (SURROGATE, "", "", "\udce9"),
    ("a\tb\nc\r", "\t\n\r", "", None),
    ("a\tb\x0bc", "\t\n\r", "", "\x0b"),
    (RLO, "", "", None),
    (LINE_SEP, "", "", None),
    (LINE_SEP, "", "\u2028\u2029", "\u2028"),
    ("a b", "", " ", " "),
])
def test_first_control(text: str, keep: str, also: str, first: str | None) -> None:
    assert first_control(text, keep=keep, also=also) == first
    assert has_controls(text, keep=keep, also=also) is (first is not None)


@pytest.mark.parametrize(("text", "out"), [
    (ESC_TITLE, "]0;ownedreport"),
    (CLEAR, "[2J[Hok"),
    (C1_CSI, "a31mred"),
    (RLO, "invoice_gpj.exe"),
    ("\u2066isolated\u2069 \ufeffbom", "isolated bom"),
    ("\u200fmark", "\u200fmark"),  # marks only steer neutral characters: kept
    (LINE_SEP, "one two three"),
    ("a\r\nb\tc\x0bd\x1ce\x85f", "a  b c d e f"),  # every break one space, not collapsed
    (SURROGATE, "caf\ufffd \ufffd"),
])
def test_one_line(text: str, out: str) -> None:
    assert one_line(text) == out


@pytest.mark.parametrize(("text", "keep", "out"), [
    (ESC_TITLE, "\t\n", "\\x1b]0;owned\\x07report"),
    (CLEAR, "\t\n", "\\x1b[2J\\x1b[Hok"),
    (C1_CSI, "\t\n", "a\\x9b31mred"),
    (RLO, "\t\n", "invoice_\\u202egpj.exe"),
    ("\u200fmark\u061c", "\t\n", "\\u200fmark\\u061c"),
    (LINE_SEP, "\t\n", "one\\u2028two\\u2029three"),
    (SURROGATE, "\t\n", "caf\\udce9 \\ud800"),
    ("a\tb\nc\rd", "\t\n", "a\tb\nc\\x0dd"),
    ("a\tb\nc", "", "a\\x09b\\x0ac"),
    ("日本語 ok", "", "日本語 ok"),
])
def test_escape_controls(text: str, keep: str, out: str) -> None:
    assert escape_controls(text, keep=keep) == out


@pytest.mark.parametrize(("text", "replacement", "out"), [
    (ESC_TITLE, "", "]0;ownedreport"),
    (C1_CSI, " ", "a 31mred"),
    (RLO, "", "invoice_gpj.exe"),
    ("soft\u00adhyphen\u200bzero", "", "softhyphenzero"),  # format characters too
    ("private\ue000use", " ", "private use"),
    (SURROGATE, "?", "caf? ?"),
    (LINE_SEP, "", LINE_SEP),  # category Z, not C: a separate policy turns them to spaces
])
def test_strip_unicode_other(text: str, replacement: str, out: str) -> None:
    assert strip_unicode_other(text, replacement) == out


def test_replace_surrogates_keeps_everything_else() -> None:
    assert replace_surrogates(SURROGATE + ESC_TITLE) == "caf\ufffd \ufffd" + ESC_TITLE
    with pytest.raises(UnicodeEncodeError):
        SURROGATE.encode("utf-8")
    assert replace_surrogates(SURROGATE).encode("utf-8") == b"caf\xef\xbf\xbd \xef\xbf\xbd"
