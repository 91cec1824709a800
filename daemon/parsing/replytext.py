"""Find the person's own words in a reply: what is quoted, what is theirs, where it ends.

A reply is split into the lines the person wrote ("own blocks") and the quote of the
original. The quote of ringi's request contains every decision word (it lists them as
instructions), so it must never be read. Two kinds of boundary exist:

* soft: `>`-quoted lines (HTML <blockquote> arrives as such), with the attribution line
  ("On ... wrote:", "2026年11月21日(土) 10:00 山田 <..>:") that introduces them. The
  person's text may continue after them: bottom-posting and interleaved replies.
* hard: everything below is the original or a signature, never the person's words: an
  Outlook "-----Original Message-----" or "差出人:/送信日時:" header block, a forwarded
  message, the `-- ` signature delimiter, a mobile footer ("Sent from my iPhone"), and an
  attribution line with an unquoted original below it.

mail-parser-reply is kept for its attribution and header patterns in eleven languages,
applied to each own block as a second detector; its signature and disclaimer stripping is
not used (English only, and it cuts "- item" lists, which are reasons) - see replywords.
"""

from __future__ import annotations

import re

from mailparser_reply import EmailReplyParser

from daemon.parsing.replywords import is_footer

# "pl" is left out: its header rule fires on a single "Data:"/"Do:" line, which is too eager.
# "fr" is left out: its attribution regex has an inner group the library mistakes for a header.
_LIBRARY = EmailReplyParser(languages=["en", "ja", "de", "es", "it", "nl", "sv", "da", "cs",
                                       "zh", "ko"])

_LIBRARY_MAX = 5000  # characters; a real approver's new text is far shorter

_QUOTE = re.compile(r"^\s*[>＞]")
_SEPARATOR = re.compile(
    r"^\s*-{2,}\s*(?:original message|forwarded message|元のメッセージ|転送メッセージ|"
    r"オリジナルメッセージ)\s*-{2,}\s*$", re.I)
_FORWARD = re.compile(r"^\s*(?:begin forwarded message|転送されたメッセージ)\s*[:：]\s*$", re.I)
_UNDERSCORES = re.compile(r"^\s*_{10,}\s*$")
_FROM = re.compile(r"^\s*\**(?:from|差出人|送信者)\**\s*[:：]", re.I)
_OTHER_HEADER = re.compile(
    r"^\s*\**(?:sent|date|to|cc|subject|送信日時|送信日|日時|日付|宛先|件名)\**\s*[:：]", re.I)
_SIGNATURE = re.compile(r"^--\s?$")
# Attribution lines and sign-offs are short; skipping long lines keeps the regexes linear.
_LONG_LINE = 500
# Attribution lines, tested on one line and on a line joined with the next (clients wrap).
_ON_WROTE = re.compile(r"^\s*on\s.+\swrote\s*[:：]\s*$", re.I)
_DATED = re.compile(
    r"^\s*\(?\d{4}\s*[年/.-]\s*\d{1,2}\s*[月/.-]\s*\d{1,2}.*\d{1,2}:\d{2}.*[:：]\s*$")
_JA_WROTE = re.compile(r"(?:のメール|のメッセージ|書きました|wrote)\s*[:：]\s*$")
_ATTRIBUTION_START = re.compile(r"^\s*(?:on\s|\(?\d{4}\s*[年/.-])", re.I)

SOFT, HARD = "soft", "hard"
# More own blocks than this between quotes is no reply a person writes: nothing is read.
MAX_BLOCKS = 40
# Nor does a reply run to more lines than these (own lines, and lines in all, before the
# first hard boundary): such a text gives no decision, and costs bounded time to find so.
MAX_OWN_LINES = 2000
MAX_LINES = 50_000


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


def _next_quoted(lines: list[str], after: int) -> bool:
    """The next non-empty line after `after` (within five) is `>`-quoted."""
    following = [x for x in lines[after + 1:after + 6] if x.strip()]
    return bool(following) and bool(_QUOTE.match(following[0]))


def _attribution_span(lines: list[str], i: int) -> int:
    """How many lines (0, 1 or 2) an attribution starting at line `i` takes."""
    line = lines[i]
    if _is_attribution(line):
        return 1
    if len(line) <= _LONG_LINE and _JA_WROTE.search(line) and _next_quoted(lines, i):
        return 1  # "Taro wrote:" with a quote under it
    nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
    if nxt and _ATTRIBUTION_START.match(line) and _is_attribution(f"{line} {nxt}"):
        return 2
    return 0


def boundary(lines: list[str], i: int) -> tuple[str, int] | None:
    """Whether line `i` starts quoted or foreign text: (SOFT or HARD, lines it spans)."""
    line = lines[i]
    if _QUOTE.match(line):
        return SOFT, 1
    if _SEPARATOR.match(line) or _FORWARD.match(line) or _SIGNATURE.match(line) \
            or is_footer(line):
        return HARD, 1
    if _UNDERSCORES.match(line):  # Outlook puts a rule above its From:/差出人: block
        following = [x for x in lines[i + 1:i + 6] if x.strip()]
        if following and _FROM.match(following[0]):
            return HARD, 1
        return None
    if _FROM.match(line):  # a header block, not a sentence that happens to start "From:"
        following = [x for x in lines[i + 1:i + 6] if x.strip()]
        if "@" in line or any(_OTHER_HEADER.match(x) for x in following[:4]):
            return HARD, 1
        return None
    span = _attribution_span(lines, i)
    if span:
        # With a `>` quote under it the person may write on below it; with the original
        # pasted unquoted, nothing below can be told apart from it.
        return (SOFT if _next_quoted(lines, i + span - 1) else HARD), span
    return None


def _library_split(text: str) -> tuple[str, bool]:
    """Text above the first header mail-parser-reply finds, and whether it found one."""
    if len(text) > _LIBRARY_MAX:  # its patterns are super-linear on long lines
        return text, False
    try:
        replies = _LIBRARY.read(text).replies
    except Exception:  # a bug in a dependency must not stop us reading mail
        return text, False
    if not replies or replies[0].headers:
        return "", True
    return replies[0].content or "", len(replies) > 1


def _library_cut(text: str) -> str:
    """Text above the first header mail-parser-reply finds ("" if the text starts with one)."""
    return _library_split(text)[0]


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def extract_reply_text(text: str) -> str:
    """The reply's own text above the quoted original (the top-posted part only)."""
    lines = _lines(text)
    cut = next((i for i in range(len(lines)) if boundary(lines, i)), len(lines))
    own = "\n".join(lines[:cut]).strip()
    return _library_cut(own).strip() if own else ""


# ringi's approval request opens "Dear NAME," / "NAME 様": quoted or pasted below the
# reply, it names the person answering, whose name may then close their reply.
_ADDRESSED = (re.compile(r"^Dear ([^,<>@]{1,60}),\s*$"),
              re.compile(r"^([^,<>@、。]{1,30}?)\s*様\s*$"))


def _addressed(line: str) -> str | None:
    body = line.lstrip(" >＞\t")
    if len(body) > 80:
        return None
    for pattern in _ADDRESSED:
        match = pattern.match(body)
        if match:
            return match.group(1).strip()
    return None


def addressed_names(text: str) -> tuple[str, ...]:
    """Names ringi's own salutation gives in the quoted or pasted original (at most 3)."""
    names: list[str] = []
    lines = _lines(text)
    i = 0
    foreign = False  # past a hard boundary: the rest is the original
    while i < min(len(lines), MAX_LINES) and len(names) < 3:
        found = None if foreign else boundary(lines, i)
        foreign = foreign or (found is not None and found[0] == HARD)
        if foreign or _QUOTE.match(lines[i]):
            name = _addressed(lines[i])
            if name:
                names.append(name)
        i += 1
    return tuple(names)


def own_blocks(text: str) -> list[list[str]]:
    """Every stretch of the person's own lines, in order, each stripped line by line.

    A top-posted reply gives one block above the quote; a bottom-posted one a block below
    it; an interleaved one a block between each pair of quotes. Reading stops at the
    first hard boundary. Past the MAX_* limits there are none (so no decision).
    """
    lines = _lines(text)
    blocks: list[list[str]] = [[]]
    written = False  # the current block has a non-empty line
    own_lines = 0
    i = 0
    while i < len(lines):
        if i >= MAX_LINES or own_lines > MAX_OWN_LINES:
            return []  # past what any reply holds: reading on costs more than it can tell
        found = boundary(lines, i)
        if found is None:
            blocks[-1].append(lines[i].strip())
            written = written or bool(blocks[-1][-1])
            own_lines += bool(blocks[-1][-1])
            i += 1
            continue
        kind, span = found
        if kind == HARD:
            break
        if written:
            blocks.append([])
            written = False
        i += span
    if len(blocks) > MAX_BLOCKS:
        return []  # no person answers in hundreds of pieces; reading them all costs too much
    result: list[list[str]] = []
    for block in blocks:
        own = "\n".join(block).strip()
        if not own:
            continue
        kept, header = _library_split(own)
        if kept.strip():
            result.append([line.strip() for line in kept.strip().split("\n")])
        if header:  # the library found a header inside: the original starts there
            break
    return result
