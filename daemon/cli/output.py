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
from typing import Any

import click

from daemon.security.text import escape_controls


def safe(text: object, *, one_line: bool = False) -> str:
    """`text` with every terminal control made visible. Line feeds and tabs stay as they
    are (a command's own layout), unless `one_line`: then a value taken from mail or a file
    cannot start a line of its own that looks like ringi's output either."""
    # The widest set of all callers: an operator's terminal also obeys bidi marks and U+2028.
    return escape_controls(str(text), keep="" if one_line else "\t\n")


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
