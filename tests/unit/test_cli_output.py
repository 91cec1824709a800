"""The one output path of every `ringi` command: nothing a terminal acts on gets through."""

from __future__ import annotations

import logging
import re
import unicodedata
from pathlib import Path

import click
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from daemon.cli.output import SafeFormatter, echo, inline, safe

BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]
ACTING = {chr(c) for c in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0),
                           *BIDI, 0x2028, 0x2029]}


def test_each_class_of_control_is_shown_as_a_visible_escape() -> None:
    assert safe("\x1b]0;pwned\x07") == "\\x1b]0;pwned\\x07"
    assert safe("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert safe("\x9b31m") == "\\x9b31m"  # C1 CSI: one character on many terminals
    assert safe("\x85\x90\x9d\x9f") == "\\x85\\x90\\x9d\\x9f"  # NEL, DCS, OSC, APC
    assert safe("\x7f\x00\r") == "\\x7f\\x00\\x0d"
    assert safe("pay \u202eexe.pdf\u202c") == "pay \\u202eexe.pdf\\u202c"
    assert safe("\u2066x\u2069\u200f") == "\\u2066x\\u2069\\u200f"
    assert safe("line\u2028next") == "line\\u2028next"
    assert safe("name\udcff.pdf") == "name\\udcff.pdf"  # an undecodable file-name byte


def test_layout_is_kept_and_ordinary_text_untouched() -> None:
    text = "R-2026-000001  出張申請 Café\n\ttype: travel ✓"
    assert safe(text) == text
    assert inline(text) == "R-2026-000001  出張申請 Café\\x0a\\x09type: travel ✓"


@given(st.text(alphabet=st.characters(codec=None), max_size=200))
def test_no_acting_character_survives_and_output_always_encodes(text: str) -> None:
    out = safe(text)
    assert not ACTING & set(out)
    assert not any(unicodedata.category(c) == "Cs" for c in out)
    out.encode("utf-8")  # never a UnicodeEncodeError on the way to the terminal
    assert not ({"\n", "\t"} | ACTING) & set(inline(text))
    if not (ACTING | {"\n", "\t"}) & set(text) and not any(
            unicodedata.category(c) == "Cs" for c in text):
        assert inline(text) == text


def test_echo_neutralises_stdout_and_stderr() -> None:
    @click.command()
    def show() -> None:
        echo("title: \x1b]0;pwned\x07")
        echo("error: \x1b[2J\x9b", err=True)

    result = CliRunner().invoke(show)
    raw = result.stdout_bytes + result.stderr_bytes
    assert b"\x1b" not in raw and b"\x07" not in raw and "\x9b".encode() not in raw
    assert result.stdout_bytes == b"title: \\x1b]0;pwned\\x07\n"
    assert result.stderr_bytes == b"error: \\x1b[2J\\x9b\n"


def test_log_lines_of_the_daemon_are_neutralised_too() -> None:
    record = logging.LogRecord("daemon", logging.INFO, __file__, 1, "subject %s", ("\x1b[2J",),
                               None)
    assert SafeFormatter("%(message)s").format(record) == "subject \\x1b[2J"


def test_every_cli_module_prints_through_the_safe_echo() -> None:
    """A new command that calls click.echo or print directly would bypass the mechanism."""
    cli_dir = Path(__file__).resolve().parents[2] / "daemon" / "cli"
    direct = re.compile(r"click\.(?:echo|secho)\(|(?<![\w.])print\(|sys\.std(?:out|err)\.write")
    offenders = [f"{p.name}:{n}" for p in sorted(cli_dir.glob("*.py")) if p.name != "output.py"
                 for n, line in enumerate(p.read_text().splitlines(), 1) if direct.search(line)]
    assert offenders == []
