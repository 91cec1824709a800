"""Characters in text from mail and files that act instead of showing: one table for all.

Titles, names, diagnostics, addresses and file names come from anyone who can send mail or
drop a file. Each place that writes such text somewhere (a header, a body, a terminal, an
SMTP envelope, a stored form) picks an operation below; the classes it removes, refuses or
escapes are named here once, so a new hostile character is added in one place.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Regular-expression class fragments (the text between `[` and `]`).
C0 = "\x00-\x1f"
DEL = "\x7f"
C1 = "\x80-\x9f"  # includes CSI (U+009B), the one-character ESC [
CONTROLS = C0 + DEL + C1  # exactly Unicode category Cc
BIDI = "\u202a-\u202e\u2066-\u2069"  # embeddings, overrides, isolates: reorder what is read
BIDI_MARKS = "\u061c\u200e\u200f"  # ALM, LRM, RLM: steer neutral characters only
LINE_SEPARATORS = "\u2028\u2029"
SURROGATES = "\ud800-\udfff"  # lone surrogates: undecodable bytes; no encoder takes them
BOM = "\ufeff"
# TAB and every line break str.splitlines knows (and US, U+001F): a space in one-line text.
BREAKS = "\t\n\r\x0b\x0c\x1c-\x1f\x85" + LINE_SEPARATORS


@lru_cache(maxsize=64)
def char_class(*parts: str, keep: str = "") -> re.Pattern[str]:
    """One character of any of `parts` (fragments above), except the characters in `keep`."""
    body = f"[{''.join(parts)}]"
    return re.compile(f"(?![{re.escape(keep)}]){body}" if keep else body)


def replace_surrogates(text: str) -> str:
    """Lone surrogates become U+FFFD, so the text can be encoded (and shows the damage)."""
    return char_class(SURROGATES).sub("\ufffd", text)


def strip_controls(text: str, keep: str = "") -> str:
    """`text` without C0/DEL/C1 controls (ESC, BEL, CSI...), except those in `keep`."""
    return char_class(CONTROLS, keep=keep).sub("", text)


def first_control(text: str, *, keep: str = "", also: str = "") -> str | None:
    """The first control character or lone surrogate in `text` (or of the `also` fragment),
    not counting `keep`; None when there is none. For places that refuse instead of clean."""
    found = char_class(CONTROLS, SURROGATES, also, keep=keep).search(text)
    return found.group() if found else None


def has_controls(text: str, *, keep: str = "", also: str = "") -> bool:
    return first_control(text, keep=keep, also=also) is not None


def one_line(text: str) -> str:
    """Text for one header line: surrogates shown as U+FFFD, every line break a space, and
    controls, bidi embeddings/overrides/isolates and the BOM gone (runs of spaces stay)."""
    text = char_class(BREAKS).sub(" ", replace_surrogates(text))
    return char_class(CONTROLS, BIDI, BOM).sub("", text)


def strip_unicode_other(text: str, replacement: str = "") -> str:
    """Every character of Unicode category C (control, format, surrogate, private use,
    unassigned) replaced: the widest class, for text that only needs to be read by people."""
    return "".join(c if unicodedata.category(c)[0] != "C" else replacement for c in text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str, keep: str = "\t\n") -> str:
    """`text` with every character that acts on a terminal (controls, bidi, line separators,
    surrogates) written as a visible escape (`\\x1b`, `\\u202e`), except those in `keep`."""
    unsafe = char_class(CONTROLS, BIDI_MARKS, BIDI, LINE_SEPARATORS, SURROGATES, keep=keep)
    return unsafe.sub(_escape, text)
