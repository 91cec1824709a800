"""Exactly one sender, or none: a strict RFC 5322 reading of From and Sender.

An approval is only as good as the address it is credited to, so ambiguity is refusal:
``email.utils.getaddresses`` (Python 3.11.7) has no strict mode and happily picks one of
several addresses, reads groups as people, and accepts ``boss@corp <evil@evil>``. This
module is a small hand-written parser of the RFC 5322 ``mailbox`` grammar (plus the obsolete
forms real clients still send: dots in display names, 8-bit and RFC 2047 names, comments)
that runs in linear time. Anything it cannot read as one mailbox is a *problem* that names
why; the caller then treats the mail as coming from nobody.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from daemon.parsing.charsets import _raw_text, decode_header_value
from daemon.security.text import strip_controls

__all__ = ["Sender", "header_lines", "read_sender"]

_ATEXT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                   "!#$%&'*+-/=?^_`{|}~")
_SPECIALS = frozenset('<>@,;:.[]')
_MAX_LEN = 2000  # a From line longer than this is not a person's address
_MAX_DEPTH = 20  # nested comments
# Characters that render as, or normalise to, an at sign (NFKC maps most; these are extra).
_AT_LIKE = frozenset("@\uff20\ufe6b")


@dataclass(frozen=True)
class Sender:
    """The one address a header names (lower-cased), its display name, or why there is none."""

    addr: str
    name: str
    problem: str | None


@dataclass(frozen=True)
class _Tok:
    kind: str  # "atom", "quoted", "special", "comment"
    text: str
    gap: bool = False  # whitespace before it in the header


class _Bad(Exception):
    """The header does not follow the grammar; the message says where."""


def _delimited(value: str, i: int, close: str) -> tuple[str, int]:
    """The text of the comment (`close` ")") or quoted string (`close` '"') opening at
    value[i], and the index after it: a backslash quotes the next character, and only
    comments nest (their inner parentheses are kept)."""
    nests = close == ")"
    depth, out, i = 1, [], i + 1
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
            continue
        if nests and ch == "(":
            depth += 1
            if depth > _MAX_DEPTH:
                raise _Bad("comments nested too deeply")
        elif ch == close:
            depth -= 1
            if depth == 0:
                return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise _Bad("unterminated comment" if nests else "unterminated quoted string")


def _is_atom_char(ch: str) -> bool:
    # RFC 6532: UTF-8 is allowed; 8-bit names were decoded before we got here.
    return ch in _ATEXT or (ord(ch) >= 0x80 and unicodedata.category(ch) != "Cc")


def _tokens(value: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, gap = 0, False
    while i < len(value):
        ch = value[i]
        if ch in " \t":
            i, gap = i + 1, True
            continue
        if ch == "(":
            text, i = _delimited(value, i, ")")
            toks.append(_Tok("comment", text, gap))
        elif ch == '"':
            text, i = _delimited(value, i, '"')
            toks.append(_Tok("quoted", text, gap))
        elif ch in _SPECIALS:
            toks.append(_Tok("special", ch, gap))
            i += 1
        elif _is_atom_char(ch):
            j = i
            while j < len(value) and _is_atom_char(value[j]):
                j += 1
            toks.append(_Tok("atom", value[i:j], gap))
            i = j
        else:
            raise _Bad(f"character U+{ord(ch):04X} is not allowed here")
        gap = False
    return toks


def _split_top(toks: list[_Tok]) -> list[list[_Tok]]:
    """Split at commas outside angle brackets (quotes and comments are single tokens)."""
    parts: list[list[_Tok]] = [[]]
    inside = False
    for tok in toks:
        if tok.kind == "special" and tok.text in "<>":
            inside = tok.text == "<"
        if tok.kind == "special" and tok.text == "," and not inside:
            parts.append([])
        else:
            parts[-1].append(tok)
    return [p for p in parts if any(t.kind != "comment" for t in p)]


def _addr_spec(toks: list[_Tok]) -> str:
    """local-part "@" domain, from tokens without comments; returns the lower-cased address."""
    words = [t for t in toks if t.kind != "comment"]
    ats = [n for n, t in enumerate(words) if t.kind == "special" and t.text == "@"]
    if len(ats) != 1:
        raise _Bad("an address needs exactly one @")
    local, domain = words[:ats[0]], words[ats[0] + 1:]
    local_text = _dotted(local, allow_quoted=True, what="local part")
    domain_text = _dotted(domain, allow_quoted=False, what="domain")
    if "." not in domain_text:
        raise _Bad("the domain has no dot")
    addr = f"{local_text}@{domain_text}"
    if any(unicodedata.category(c)[0] in "CZ" for c in addr) or "\ufffd" in addr:
        raise _Bad("the address contains invisible or undecodable characters")
    return addr.lower()


def _dotted(words: list[_Tok], *, allow_quoted: bool, what: str) -> str:
    """word *("." word): a dot-atom, or for local parts also quoted words that are dot-atoms."""
    out: list[str] = []
    for n, tok in enumerate(words):
        want_word = n % 2 == 0
        if want_word and tok.kind == "atom":
            out.append(tok.text)
        elif want_word and tok.kind == "quoted" and allow_quoted and tok.text and \
                all(_is_atom_char(c) for c in tok.text):
            out.append(tok.text)  # "taro".yamada is taro.yamada; anything odder is refused
        elif not want_word and tok.kind == "special" and tok.text == ".":
            out.append(".")
        else:
            raise _Bad(f"the {what} is not a plain name")
    if not out or len(words) % 2 == 0:
        raise _Bad(f"the {what} is empty or ends with a dot")
    return "".join(out)


def _mailbox(toks: list[_Tok]) -> tuple[str, list[_Tok]]:
    """name-addr or addr-spec; returns the address and the display-name tokens."""
    opens = [n for n, t in enumerate(toks) if t.kind == "special" and t.text == "<"]
    closes = [n for n, t in enumerate(toks) if t.kind == "special" and t.text == ">"]
    if not opens and not closes:
        return _addr_spec(toks), []
    if len(opens) != 1 or len(closes) != 1 or closes[0] < opens[0]:
        raise _Bad("angle brackets do not enclose exactly one address")
    after = toks[closes[0] + 1:]
    if any(t.kind != "comment" for t in after):
        raise _Bad("text after the address")
    phrase = toks[:opens[0]]
    # An unquoted "@" is tolerated only if the name turns out to be the address itself
    # ('taro@corp.example' <taro@corp.example>); _read_one checks that. Brackets and dots
    # are harmless text some clients leave unquoted ("Taro [Sales]", "John Q. Public").
    if any(t.kind == "special" and t.text not in ".@[]" for t in phrase):
        raise _Bad("the display name contains an unquoted special character")
    inner = toks[opens[0] + 1:closes[0]]
    if any(t.kind == "special" and t.text == ":" for t in inner):
        raise _Bad("source routes are not accepted")
    return _addr_spec(inner), phrase + after


def _phrase_text(toks: list[_Tok]) -> str:
    """The display name as written, quotes removed (encoded words stay for decoding)."""
    out: list[str] = []
    for n, tok in enumerate(toks):
        if n and tok.gap:
            out.append(" ")
        out.append(f"({tok.text})" if tok.kind == "comment" else tok.text)
    return "".join(out)


def _visible(text: str) -> str:
    """What a reader would see: compatibility forms folded, invisible characters dropped."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(c for c in text if unicodedata.category(c) not in ("Cf", "Cc", "Mn"))


def _hides_address(addr: str, texts: list[str]) -> bool:
    """True when a display name or comment shows an address other than the real one."""
    # Only the whole address counts as "the same": "xtaro@corp.example" is another one.
    own = re.compile(rf"(?<![^\s<>()\[\]\"',;:]){re.escape(addr)}(?![^\s<>()\[\]\"',;:])")
    for text in texts:
        seen = own.sub("", _visible(text).lower())
        if any(c in _AT_LIKE for c in seen):
            return True
    return False


def _read_one(raw: str) -> tuple[str, str]:
    """Parse one header value as exactly one mailbox; raises _Bad with the reason."""
    value = re.sub(r"\r?\n(?=[ \t])", "", raw)
    if len(value) > _MAX_LEN:
        raise _Bad("the header is too long")
    value = _raw_text(value)  # undeclared 8-bit or JIS names become text before tokenising
    if "\r" in value or "\n" in value:
        raise _Bad("a bare line break")
    toks = _tokens(value.strip())
    parts = _split_top(toks)
    inside = False
    for t in toks:  # a ":" outside <...> starts a group: a list, not a person
        if t.kind == "special" and t.text in "<>":
            inside = t.text == "<"
        elif t.kind == "special" and t.text == ":" and not inside:
            raise _Bad("it is a group, not one person")
        elif t.kind == "special" and t.text == ";" and not inside:
            raise _Bad("';' separates several addresses")
    if not parts:
        raise _Bad("no address")
    if len(parts) > 1:
        raise _Bad(f"{len(parts)} addresses, not one")
    addr, name_toks = _mailbox(parts[0])
    comments = [t.text for t in parts[0] if t.kind == "comment"]
    name_raw = _phrase_text([t for t in name_toks if t.kind != "comment"])
    if not name_raw and comments:
        name_raw = comments[-1]  # "taro@corp.example (Taro Yamada)"
    elif name_raw and any(t.kind == "comment" for t in name_toks):
        name_raw = _phrase_text(name_toks)
    name = decode_header_value(name_raw)
    raw_texts = [t.text for t in name_toks if t.kind in ("atom", "quoted")] + comments
    if _hides_address(addr, [name, *comments, *raw_texts]):
        raise _Bad("the display name or a comment shows an address that is not the sender's")
    name = strip_controls(name, keep="\t")
    return addr, re.sub(r"[^\S\u3000]+", " ", name).strip()


def read_sender(from_values: list[str], sender_values: list[str]) -> Sender:
    """The one author of a mail from its raw From and Sender header values, or why not."""
    if not from_values:
        return Sender("", "", "no From header")
    if len(from_values) > 1:
        return Sender("", "", f"{len(from_values)} From headers")
    try:
        addr, name = _read_one(from_values[0])
    except _Bad as exc:
        return Sender("", "", f"From names nobody: {exc}")
    except Exception as exc:  # never let one odd header stop intake
        return Sender("", "", f"From could not be read ({type(exc).__name__})")
    if len(sender_values) > 1:
        return Sender("", "", f"{len(sender_values)} Sender headers")
    if sender_values:
        try:
            other, _ = _read_one(sender_values[0])
        except _Bad as exc:
            return Sender("", "", f"Sender names nobody: {exc}")
        except Exception as exc:
            return Sender("", "", f"Sender could not be read ({type(exc).__name__})")
        if other != addr:
            return Sender("", "", f"Sender {other} differs from From {addr}")
    return Sender(addr, name, None)


def header_lines(raw: bytes, name: str) -> int:
    """How many lines of the top header block start a `name` header, counted on the bytes.

    The obsolete form ``From : x`` (space before the colon) is a From header to an MTA or a
    mail client, but Python's parser drops it as a misplaced mbox line; comparing this count
    with the parsed headers catches that disagreement.
    """
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    return len(re.findall(rb"(?im)^" + re.escape(name.encode()) + rb"[ \t]*:", head))
