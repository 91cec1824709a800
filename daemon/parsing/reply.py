"""Read an approver's decision from a reply mail.

The decision must come only from the approver's new text: the quoted request below it
usually contains every decision word (it lists them as instructions). So we cut at anything
that looks like quoting with two independent detectors (our own line rules, then
mail-parser-reply), and only then look at the first word.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass

from mailparser_reply import EmailReplyParser


class Decision(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    RETURN = "return"
    HOLD = "hold"


@dataclass(frozen=True)
class ParsedDecision:
    decision: Decision
    reason: str


# "pl" is left out: its header rule fires on a single "Data:"/"Do:" line, which is too eager.
# "fr" is left out: its attribution regex has an inner group the library mistakes for a header.
_LIBRARY = EmailReplyParser(languages=["en", "ja", "de", "es", "it", "nl", "sv", "da", "cs",
                                       "zh", "ko"])

_LIBRARY_MAX = 5000  # characters; a real approver's new text is far shorter

_QUOTE = re.compile(r"^\s*[>＞]")
_SEPARATOR = re.compile(
    r"^\s*-{2,}\s*(?:original message|forwarded message|元のメッセージ|転送メッセージ|"
    r"オリジナルメッセージ)\s*-{2,}\s*$", re.I)
_UNDERSCORES = re.compile(r"^\s*_{10,}\s*$")
_FROM = re.compile(r"^\s*\**(?:from|差出人|送信者)\**\s*[:：]", re.I)
_OTHER_HEADER = re.compile(
    r"^\s*\**(?:sent|date|to|cc|subject|送信日時|送信日|日時|日付|宛先|件名)\**\s*[:：]", re.I)
_SIGNATURE = re.compile(r"^--\s?$")
_MOBILE = re.compile(r"^\s*(?:sent from my \S.*|get outlook for \S.*|"
                     r"\S*(?:iphone|ipad|android|outlook|モバイル|携帯)\S*から送信)\s*$", re.I)
# Attribution lines and sign-offs are short; skipping long lines keeps the regexes linear.
_LONG_LINE = 500
# Attribution lines, tested on one line and on a line joined with the next (clients wrap).
_ON_WROTE = re.compile(r"^\s*on\s.+\swrote\s*[:：]\s*$", re.I)
_DATED = re.compile(
    r"^\s*\(?\d{4}\s*[年/.-]\s*\d{1,2}\s*[月/.-]\s*\d{1,2}.*\d{1,2}:\d{2}.*[:：]\s*$")
_JA_WROTE = re.compile(r"(?:のメール|のメッセージ|書きました|wrote)\s*[:：]\s*$")
_ATTRIBUTION_START = re.compile(r"^\s*(?:on\s|\(?\d{4}\s*[年/.-])", re.I)


def _is_attribution(text: str) -> bool:
    if len(text) > _LONG_LINE:
        return False
    if _ON_WROTE.match(text) or _DATED.match(text):
        return True
    match = _JA_WROTE.search(text)
    if match is None:
        return False
    # A bare "... wrote:" needs a date or address to look like a client's attribution line.
    return match.group().startswith(("の", "書")) or bool(re.search(r"[\d@<]", text))


def _starts_quote(lines: list[str], i: int) -> bool:
    line = lines[i]
    following = [x for x in lines[i + 1:i + 6] if x.strip()]
    if _QUOTE.match(line) or _SEPARATOR.match(line) or _SIGNATURE.match(line):
        return True
    if (len(line) <= _LONG_LINE and _MOBILE.match(line)) or _is_attribution(line):
        return True
    if len(line) <= _LONG_LINE and _JA_WROTE.search(line) and following:  # "Taro wrote:"
        return bool(_QUOTE.match(following[0]))
    if _UNDERSCORES.match(line):  # Outlook puts a rule above its From:/差出人: block
        return bool(following) and bool(_FROM.match(following[0]))
    if _FROM.match(line):  # a header block, not a sentence that happens to start "From:"
        return "@" in line or any(_OTHER_HEADER.match(x) for x in following[:4])
    nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
    return bool(nxt) and bool(_ATTRIBUTION_START.match(line)) and _is_attribution(f"{line} {nxt}")


def _library_cut(text: str) -> str:
    """Text above the first header mail-parser-reply finds ("" if the text starts with one)."""
    if len(text) > _LIBRARY_MAX:  # its patterns are super-linear on long lines
        return text
    try:
        replies = _LIBRARY.read(text).replies
    except Exception:  # a bug in a dependency must not stop us reading mail
        return text
    if not replies or replies[0].headers:
        return ""
    return replies[0].content or ""


def extract_reply_text(text: str) -> str:
    """The reply's own text above the quoted original."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cut = next((i for i in range(len(lines)) if _starts_quote(lines, i)), len(lines))
    own = "\n".join(lines[:cut]).strip()
    return _library_cut(own).strip() if own else ""


_WORDS: dict[str, Decision] = {
    "approve": Decision.APPROVE, "approved": Decision.APPROVE,
    "reject": Decision.REJECT, "rejected": Decision.REJECT,
    "deny": Decision.REJECT, "denied": Decision.REJECT,
    "return": Decision.RETURN, "returned": Decision.RETURN,
    "hold": Decision.HOLD,
}
_POLITE = ("", "します", "する", "しました", "いたします", "致します")
for _stem, _decision in (("承認", Decision.APPROVE), ("却下", Decision.REJECT),
                         ("否認", Decision.REJECT), ("不承認", Decision.REJECT),
                         ("差し戻し", Decision.RETURN), ("差戻し", Decision.RETURN),
                         ("保留", Decision.HOLD)):
    _WORDS.update({_stem + suffix: _decision for suffix in _POLITE})
_WORDS.update({"差し戻します": Decision.RETURN, "差戻します": Decision.RETURN,
               "差し戻しました": Decision.RETURN})
# Longest first, so that "承認します" wins over "承認" and the remainder is the reason.
_JA_WORDS = sorted((w for w in _WORDS if not w.isascii()), key=len, reverse=True)

_SEPARATORS = " \t\u3000:：-－–—、。,，.．!！」』】）)]］>＞*＊・"
_REASON_LABEL = re.compile(r"^(?:reason|理由)\s*[:：]\s*", re.I)


def _is_boundary(rest: str) -> bool:
    """A decision word must be whole: "approvement", "承認者" or "承認しますか" are not."""
    if not rest:
        return True
    category = unicodedata.category(rest[0])
    return (rest[0].isspace() or category[0] in "PS") and rest.lstrip()[:1] not in ("?", "？")


def _match_word(line: str) -> tuple[Decision, str] | None:
    """Match the decision word at the start of `line`, returning it and the original rest."""
    # NFKC per character keeps a map back to the original, so the reason is not rewritten.
    normal: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(line):
        folded = unicodedata.normalize("NFKC", char).lower()
        normal.append(folded)
        origin.extend([index] * len(folded))
    flat = "".join(normal)
    start = 0
    while start < len(flat) and (flat[start].isspace()
                                 or unicodedata.category(flat[start])[0] in "PS"):
        start += 1
    latin = re.match(r"[a-z]+", flat[start:])
    candidates = [latin.group()] if latin else [w for w in _JA_WORDS if flat.startswith(w, start)]
    for word in candidates:
        end = start + len(word)
        rest = line[origin[end]:] if end < len(origin) else ""
        if word in _WORDS and _is_boundary(flat[end:]):
            return _WORDS[word], rest
    return None


def parse_decision(text: str) -> ParsedDecision | None:
    """Decision from a reply body (full body given; it calls extract_reply_text first).

    None if no decision word starts the reply.
    """
    lines = [line.strip() for line in extract_reply_text(text).split("\n") if line.strip()]
    if not lines:
        return None
    matched = _match_word(lines[0])
    if matched is None:
        return None
    decision, rest = matched
    reason_lines = [rest.lstrip(_SEPARATORS), *lines[1:]]
    reason_lines = [line for line in reason_lines if line]
    if reason_lines:
        reason_lines[0] = _REASON_LABEL.sub("", reason_lines[0]).lstrip(_SEPARATORS)
    return ParsedDecision(decision, "\n".join(reason_lines).strip())
