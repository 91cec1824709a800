"""Several decisions in one reply to a digest (SPEC C.14): one line per case.

    R-2026-000123 approve
    R-2026-000124 reject: the quote is missing
    R-2026-000125 承認
    R-2026-000126 却下 予算超過のため

Only the reply's own text counts (daemon.parsing.reply's extraction: the quoted digest lists
every case and every decision word). A decision line starts with a case number in the
configured format (a list bullet before it is allowed); what follows is read by
daemon.parsing.reply exactly like the text of a single reply, so the same words, reasons and
safety rules hold ("R-2026-000123 cannot approve" is no decision). Every other line is
ignored: greetings, signatures, remarks.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass

from daemon.parsing.reply import ParsedDecision, extract_reply_text, parse_decision

MAX_LINES = 200  # decision lines read from one reply; one more is returned, unread
_FIELDS = {"year": r"\d{4}", "month": r"\d{1,2}", "seq": r"\d+"}
_BULLET = re.compile(r"[\s\-*・•●■◆]*")


@dataclass(frozen=True)
class DecisionLine:
    number: str  # as written, folded (full-width to ASCII) and upper-cased
    text: str  # what follows the number: the decision and its reason
    line: str  # the line as written (its first 200 characters), for the confirmation
    parsed: ParsedDecision | None


def number_pattern(number_format: str) -> re.Pattern[str]:
    """A regular expression for case numbers of `[cases] number_format` (R-{year}-{seq:06d})."""
    parts = []
    for literal, field, _, _ in string.Formatter().parse(number_format):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(_FIELDS.get(field, r"\w+"))
    return re.compile("".join(parts), re.IGNORECASE)


def _fold(line: str) -> tuple[str, list[int]]:
    """NFKC per character, with a map back to the original (as daemon.parsing.reply does),
    so a number typed full-width ("Ｒ－２０２６…") counts and the reason is not rewritten."""
    flat: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(line):
        folded = unicodedata.normalize("NFKC", char)
        flat.append(folded)
        origin.extend([index] * len(folded))
    return "".join(flat), origin


def decision_lines(text: str, numbers: re.Pattern[str]) -> list[DecisionLine]:
    """Every line of the reply's own text that starts with a case number, in order (past
    MAX_LINES, one more unread line stands for the rest)."""
    found: list[DecisionLine] = []
    for raw in extract_reply_text(text).splitlines():
        line = raw.strip()
        flat, origin = _fold(line)
        start = _BULLET.match(flat)
        at = start.end() if start else 0
        m = numbers.match(flat, at)
        if m is None or (m.end() < len(flat) and flat[m.end()].isalnum()
                         and flat[m.end()].isascii()):
            continue  # no number, or only the start of a longer word
        rest = line[origin[m.end()]:] if m.end() < len(origin) else ""
        rest = rest.lstrip(" \t\u3000:：")
        if len(found) == MAX_LINES:  # read no further; the caller refuses the rest
            found.append(DecisionLine(m.group().upper(), rest, line[:200], None))
            break
        found.append(DecisionLine(m.group().upper(), rest, line[:200],
                                  parse_decision(rest) if rest else None))
    return found
