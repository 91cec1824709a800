"""Terminal-safe output: everything a `ringi` command prints goes through `echo`.

Case titles, field values, reasons, file names and error texts come from mail and files that
anyone can write. Printed raw, an ESC or C1 sequence retitles the operator's terminal,
clears the screen, hides lines or (with some emulators) writes to the clipboard; a bidi
override reorders what the operator reads; a CR overwrites a line. `safe` replaces each such
character by a visible escape (`\\x1b`, `\\x9b`, `\\u202e`) so nothing is hidden and nothing
acts; `echo` applies it to every line a command prints, on stdout and stderr alike.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import click

# C0 controls except TAB and LF, DEL, C1 controls (U+0080-U+009F), the bidi embeddings,
# overrides, isolates and marks, the Unicode line and paragraph separators, and lone
# surrogates (undecodable bytes of a file name, which would also crash the encoder).
_UNSAFE = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff"
)
_KEEP_LAYOUT = re.compile(f"[{_UNSAFE}]")
_ONE_LINE = re.compile(f"[{_UNSAFE}\t\n]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: object, *, one_line: bool = False) -> str:
    """`text` with every terminal control made visible. Line feeds and tabs stay as they
    are (a command's own layout), unless `one_line`: then a value taken from mail or a file
    cannot start a line of its own that looks like ringi's output either."""
    pattern = _ONE_LINE if one_line else _KEEP_LAYOUT
    return pattern.sub(_visible, str(text))


def inline(text: object) -> str:
    """A value from mail or a file inside one line of output (a title, a reason, a name)."""
    return safe(text, one_line=True)


def echo(message: Any = None, *, err: bool = False, nl: bool = True) -> None:
    """`click.echo` for every `ringi` command: the text is made terminal-safe first."""
    click.echo(None if message is None else safe(message), err=err, nl=nl)


class SafeFormatter(logging.Formatter):
    """Log lines of `ringi run` on a terminal or in a file: the same neutralisation, so a
    hostile subject in a log message cannot act on whoever reads the log."""

    def format(self, record: logging.LogRecord) -> str:
        return safe(super().format(record))
