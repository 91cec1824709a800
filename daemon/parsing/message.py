"""Decode an incoming raw email into the few Unicode fields ringi needs.

Japanese mail in the wild is messy: ISO-2022-JP with Windows (CP50220) extensions,
"Shift_JIS" that is really cp932, undeclared 8-bit header bytes and bogus charset labels.
The stdlib copes with standards-compliant mail; the fallbacks here make sure one odd message
can never crash intake or turn an approver's words into mojibake.
"""

from __future__ import annotations

import base64
import binascii
import email.message
import email.parser
import email.policy
import email.utils
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import unquote_to_bytes


@dataclass(frozen=True)
class Attachment:
    """A file the applicant sent; filename is never empty ("attachment-N" if none was given)."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class ParsedMail:
    """Everything intake needs, already in Unicode; `message` is kept for anything else."""

    message: email.message.EmailMessage
    from_addr: str
    from_name: str
    subject: str
    message_id: str | None
    references: tuple[str, ...]
    text: str
    attachments: tuple[Attachment, ...]
    auto_reason: str | None


# --------------------------------------------------------------------------- charsets

_CP932 = {"shift_jis", "shift-jis", "shiftjis", "sjis", "x-sjis", "s-jis", "ms_kanji", "ms-kanji",
          "csshiftjis", "windows-31j", "cswindows31j", "cp932", "ms932", "x-ms-cp932"}
_EUC = {"euc-jp", "euc_jp", "eucjp", "x-euc-jp", "x-euc", "ujis", "cseucpkdfmtjapanese",
        "eucjp-ms", "euc-jp-ms", "cp51932"}
_JIS = "jis"  # pseudo codec: the whole ISO-2022-JP family, tried via _JIS_CODECS


def _canonical_charset(name: str | None) -> str | None:
    """Map a declared charset to a codec we trust; None means "unknown, sniff it"."""
    if not name:
        return None
    cs = name.strip().strip("\"'").lower()
    if cs in _CP932:
        return "cp932"
    if cs in _EUC:
        return "euc_jp"
    if cs.replace("_", "-").startswith(("iso-2022-jp", "csiso2022jp", "cp5022")) or cs == "jis":
        return _JIS
    if cs in {"us-ascii", "ascii", "ansi_x3.4-1968", "unknown-8bit", "x-unknown", "8bit"}:
        return None  # "ascii" labels routinely hide 8-bit or JIS text
    try:
        "a".encode(cs)  # rejects unknown names and bytes-to-bytes codecs such as "zip"
    except (LookupError, UnicodeError, ValueError):
        return None
    return cs


_JIS_ESCAPES = {b"\x1b$B": "kanji", b"\x1b$@": "kanji", b"\x1b$(B": "kanji", b"\x1b$(Q": "kanji",
                b"\x1b$(O": "kanji", b"\x1b(B": "ascii", b"\x1b(J": "ascii", b"\x1b(H": "ascii",
                b"\x1b(I": "kana", b"\x1b$(D": "other", b"\x1b$A": "other"}


def _jis_to_cp932(data: bytes) -> bytes:
    """Re-encode ISO-2022-JP as Shift_JIS so cp932 can decode NEC/IBM (CP50220) extensions.

    Last resort only: JIS X 0212 and other sets with no cp932 equivalent become 〓.
    """
    out = bytearray()
    mode, shifted, i = "ascii", False, 0
    while i < len(data):
        b = data[i]
        esc = next((e for e in _JIS_ESCAPES if data.startswith(e, i)), b"") if b == 0x1B else b""
        pair = data[i:i + 2]
        if esc:
            mode = _JIS_ESCAPES[esc]
        elif b in (0x0E, 0x0F):  # SO/SI half-width kana (CP50221/CP50222)
            shifted = b == 0x0E
        elif mode in ("kanji", "other") and len(pair) == 2 and all(0x21 <= c <= 0x7E for c in pair):
            j1, j2 = pair
            s1 = ((j1 + 1) >> 1) + 0x70
            s1 += 0x40 if s1 >= 0xA0 else 0
            s2 = j2 + 0x1F + (1 if j2 + 0x1F >= 0x7F else 0) if j1 % 2 else j2 + 0x7E
            out += bytes((s1, s2)) if mode == "kanji" else b"\x81\xac"  # GETA MARK stand-in
            i += 1
        else:
            out.append(b + 0x80 if (mode == "kana" or shifted) and 0x21 <= b <= 0x5F else b)
        i += len(esc) or 1
    return bytes(out)


# Each covers designations the others reject: JIS X 0212 with half-width kana (ext),
# KS C 5601 and friends (-2), JIS X 0213 (-2004). CP50220's NEC rows are handled by _sniff.
_JIS_CODECS = ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_2", "iso2022_jp_2004")


def _try(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeError, LookupError):
        return None


def _first(data: bytes, codecs: tuple[str, ...]) -> str | None:
    return next((text for c in codecs if (text := _try(data, c)) is not None), None)


def _oddity(text: str) -> int:
    """Count characters typical of a wrong Japanese guess (half-width kana, PUA, C1 controls)."""
    return sum(1 for c in text if "\uff61" <= c <= "\uff9f" or "\ue000" <= c <= "\uf8ff"
               or "\x80" <= c <= "\x9f")


def _sniff(data: bytes) -> str | None:
    """Guess undeclared text: JIS escapes, UTF-8, then the likelier of cp932 and EUC-JP.

    Nearly any EUC-JP byte string is also valid cp932, so "first that decodes" would never
    pick EUC-JP; the oddity score (ties go to cp932) makes the choice meaningful.
    """
    if data.isascii() and (b"\x1b$" in data or b"\x1b(I" in data):
        text = _first(data, _JIS_CODECS)
        return text or _jis_to_cp932(data).decode("cp932", errors="replace")
    text = _try(data, "utf-8")
    guesses = [t for c in ("cp932", "euc_jp") if (t := _try(data, c)) is not None]
    return text if text is not None else min(guesses, key=_oddity, default=None)


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Decode text bytes: trust the declared charset if it works, else sniff, never raise."""
    codec = _canonical_charset(charset)
    text = _first(data, _JIS_CODECS if codec == _JIS else (codec,) if codec else ())
    text = text if text is not None else _sniff(data)
    if text is not None:
        return text
    return data.decode("utf-8" if codec in (None, _JIS) else codec, errors="replace")


# --------------------------------------------------------------------------- headers

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")


def _to_bytes(value: str) -> bytes:
    """Undo the parser's surrogateescape; stray lone surrogates become '?'."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace")


def _raw_text(value: str) -> str:
    """Recover undeclared 8-bit / JIS bytes the parser smuggled in as surrogates."""
    if "\x1b" not in value and not any("\udc80" <= c <= "\udcff" for c in value):
        return value
    return decode_bytes(_to_bytes(value))


def _word_bytes(encoding: str, payload: str) -> bytes | None:
    data = _to_bytes(payload)
    try:
        if encoding in "bB":
            return base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
        return binascii.a2b_qp(data, header=True)
    except (binascii.Error, ValueError):
        return None


def decode_header_value(raw: str) -> str:
    """Decode RFC 2047 words (joining adjacent ones so split multibyte chars survive)."""
    value = re.sub(r"\r?\n(?=[ \t])", "", raw).replace("\r", "").replace("\n", "")
    parts: list[str] = []
    run: bytearray | None = None
    run_charset = ""
    pos = 0

    def flush() -> None:
        nonlocal run
        if run is not None:
            parts.append(decode_bytes(bytes(run), run_charset))
            run = None

    for match in _ENCODED_WORD.finditer(value):
        data = _word_bytes(match.group(2), match.group(3))
        if data is None:
            continue  # a malformed word stays behind as literal text
        gap = value[pos:match.start()]
        charset = match.group(1).split("*", 1)[0].lower()
        if run is None or gap.strip(" \t"):  # whitespace between two words is dropped
            flush()
            parts.append(_raw_text(gap))
            run, run_charset = bytearray(), charset
        elif charset != run_charset:
            flush()
            run, run_charset = bytearray(), charset
        run += data
        pos = match.end()
    flush()
    parts.append(_raw_text(value[pos:]))
    return "".join(parts)


def _header(msg: email.message.Message, name: str) -> str | None:
    """First raw value of a header: the policy's decoded view has already lost 8-bit bytes."""
    try:
        return next((str(v) for k, v in msg.raw_items() if k.lower() == name), None)
    except Exception:
        return None


_PARAM = re.compile(r';\s*([^=;\s]+)\s*=\s*("(?:\\.|[^"\\])*"|[^;]*)')


def _params(value: str | None) -> tuple[str, list[tuple[str, str]]]:
    """Split 'main; a=b; c="d;e"' leniently; email.utils chokes on raw 8-bit values."""
    value = re.sub(r"\r?\n(?=[ \t])", "", value or "")
    params = []
    for m in _PARAM.finditer(value):
        val = m.group(2).strip()
        if val.startswith('"'):
            val = re.sub(r'\\([\\"])', r"\1", val[1:-1] if val.endswith('"') else val[1:])
        params.append((m.group(1).lower(), val))
    return value.split(";", 1)[0].strip().lower(), params


def _param(params: list[tuple[str, str]], name: str) -> str | None:
    """Look up a parameter, assembling RFC 2231 continuations and charsets."""
    plain: str | None = None
    sections: dict[int, tuple[bool, str]] = {}
    for key, val in params:
        if key == name:
            plain = val
        elif key == name + "*":
            sections[0] = (True, val)
        elif m := re.fullmatch(re.escape(name) + r"\*(\d+)(\*?)", key):
            sections.setdefault(int(m.group(1)), (bool(m.group(2)), val))
    if not sections:
        return None if plain is None else decode_header_value(plain)
    charset: str | None = None
    data = bytearray()
    for index in sorted(sections):
        extended, val = sections[index]
        if extended and index == min(sections) and val.count("'") >= 2:
            charset, _lang, val = val.split("'", 2)
        data += unquote_to_bytes(_to_bytes(val)) if extended else _to_bytes(val)
    return decode_header_value(decode_bytes(bytes(data), charset))


# --------------------------------------------------------------------------- bodies

class _HTMLText(HTMLParser):
    """HTML to text; <blockquote> becomes '> ' quoting so the reply cut still sees the quote."""

    _BLOCK = frozenset({"p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4",
                        "h5", "h6", "blockquote", "pre", "hr", "dd"})
    _HIDDEN = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.buf: list[str] = []
        self.depth = {"blockquote": 0, "pre": 0, "hidden": 0}
        self.line_quote = 0

    def _break(self) -> None:
        line = "".join(self.buf).replace("\xa0", " ").strip()
        quote = "> " * min(self.line_quote, 10)  # capped: hostile nesting must not explode
        self.lines.append(quote + line if line else "")
        self.buf, self.line_quote = [], self.depth["blockquote"]

    def _tag(self, tag: str, step: int) -> None:
        if tag in self._BLOCK:
            self._break()
        key = "hidden" if tag in self._HIDDEN else tag
        if key in self.depth:
            self.depth[key] = max(0, self.depth[key] + step)
            self.line_quote = self.depth["blockquote"]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag(tag, 1)

    def handle_endtag(self, tag: str) -> None:
        self._tag(tag, -1)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BLOCK:  # <br/> is one break; <script/> must not open a hidden region
            self._break()

    def handle_data(self, data: str) -> None:
        if self.depth["hidden"]:
            return
        if not self.depth["pre"]:
            self.buf.append(re.sub(r"[ \t\r\n\f]+", " ", data))
            return
        first, *rest = data.split("\n")
        self.buf.append(first)
        for line in rest:
            self._break()
            self.buf.append(line)

    def text(self) -> str:
        self._break()
        return re.sub(r"\n{3,}", "\n\n", "\n".join(self.lines)).strip("\n")


def html_to_text(html: str) -> str:
    """Plain text of an HTML body, for mailers that send no text/plain alternative."""
    parser = _HTMLText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # HTMLParser is lenient, but be certain intake never dies here
        return re.sub(r"<[^>]*>", "", html)
    return parser.text()


def _unflow(text: str, delsp: bool) -> str:
    """Undo RFC 3676 format=flowed soft line breaks (Apple Mail, Thunderbird)."""
    out: list[str] = []
    joining = False
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        body = line[depth:]
        body = body[1:] if body.startswith(" ") else body
        soft = body.endswith(" ") and body != "-- "
        body = body[:-1] if soft and delsp else body
        if joining and out:
            out[-1] += body
        else:
            out.append(">" * depth + (" " if depth and body else "") + body)
        joining = soft
    return "\n".join(out)


def _leaves(part: email.message.Message, depth: int = 0) -> Iterator[email.message.Message]:
    """Leaf parts in order, not descending into attached messages."""
    payload = part.get_payload()
    if depth < 40 and _ctype(part).startswith("multipart/") and isinstance(payload, list):
        for sub in payload:
            if isinstance(sub, email.message.Message):
                yield from _leaves(sub, depth + 1)
    else:
        yield part


def _ctype(part: email.message.Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "text/plain"


def _payload(part: email.message.Message) -> bytes:
    try:
        payload = part.get_payload()
        if isinstance(payload, list):  # message/rfc822 and friends
            return b"".join(p.as_bytes() for p in payload if isinstance(p, email.message.Message))
        data = part.get_payload(decode=True)
        return data if isinstance(data, bytes) else b""
    except Exception:
        return b""


def _part_text(part: email.message.Message) -> str:
    params = dict(_params(_header(part, "content-type"))[1])
    text = decode_bytes(_payload(part), params.get("charset"))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if params.get("format", "").lower() == "flowed":
        text = _unflow(text, params.get("delsp", "").lower() == "yes")
    return html_to_text(text) if _ctype(part) == "text/html" else text


_FORM_TYPES = ("application/pdf", "application/msword", "application/vnd.ms-excel",
               "application/vnd.ms-word", "application/vnd.openxmlformats-officedocument.",
               "application/vnd.oasis.opendocument.", "application/rtf", "text/csv",
               "text/tab-separated-values", "application/csv")
_FORM_EXTENSIONS = (".pdf", ".doc", ".docx", ".xls", ".xlsx", ".xlsm", ".csv", ".tsv", ".ods",
                    ".odt", ".rtf")


def _filename(part: email.message.Message) -> str:
    name = (_param(_params(_header(part, "content-disposition"))[1], "filename")
            or _param(_params(_header(part, "content-type"))[1], "name") or "")
    name = re.split(r"[/\\]", name)[-1]  # never let a sender choose a directory
    return "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()


def _body_and_attachments(msg: email.message.Message) -> tuple[str, tuple[Attachment, ...]]:
    plain: str | None = None
    html: str | None = None
    attachments: list[Attachment] = []
    for part in _leaves(msg):
        ctype = _ctype(part)
        disposition = _params(_header(part, "content-disposition"))[0]
        filename = _filename(part)
        if not filename and disposition != "attachment":
            if plain is None and (ctype == "text/plain" or ctype.startswith("multipart/")):
                plain = _part_text(part)
                continue
            if html is None and ctype == "text/html":
                html = _part_text(part)
                continue
        form_like = ctype.startswith(_FORM_TYPES) or filename.lower().endswith(_FORM_EXTENSIONS)
        if disposition == "attachment" or (filename and disposition != "inline") or form_like:
            name = filename or f"attachment-{len(attachments) + 1}"
            attachments.append(Attachment(name, ctype, _payload(part)))
    text = plain if plain is not None else html or ""
    return text, tuple(attachments)


# --------------------------------------------------------------------------- auto replies

_AUTO_SUBJECT = re.compile(r"^\s*(?:out of office|automatic reply|auto:|自動応答|不在)", re.I)


def _auto_reason(msg: email.message.Message, envelope_from: str | None, sender: str,
                 subject: str) -> str | None:
    """Why this mail must never be answered (RFC 3834 plus common vendor conventions)."""
    def value(name: str) -> str | None:
        raw = _header(msg, name)
        return None if raw is None else _params(raw)[0]

    auto_submitted = value("auto-submitted")
    local_parts = {a.strip(" <>").rsplit("@", 1)[0].lower() for a in (sender, envelope_from or "")}
    checks = (
        (auto_submitted is not None and auto_submitted != "no", "auto-submitted"),
        (envelope_from is not None and envelope_from.strip() in ("", "<>"), "bounce (null sender)"),
        (bool(local_parts & {"mailer-daemon", "postmaster"}), "bounce (mailer-daemon)"),
        (_ctype(msg) == "multipart/report", "delivery/read report"),
        (value("precedence") in ("bulk", "junk", "list"), "bulk mail"),
        (value("list-id") is not None or value("list-unsubscribe") is not None, "mailing list"),
        (value("x-autoreply") == "yes" or value("x-autorespond") is not None, "auto-reply"),
        (bool(_AUTO_SUBJECT.match(subject)), "auto-reply"),
    )
    return next((reason for hit, reason in checks if hit), None)


# --------------------------------------------------------------------------- entry point

_MSG_ID = re.compile(r"<[^<>\s]+>")


def _message_ids(raw: str | None) -> list[str]:
    return _MSG_ID.findall(_raw_text(raw)) if raw else []


def parse_mail(raw: bytes, envelope_from: str | None = None) -> ParsedMail:
    """Parse raw RFC 5322 bytes; malformed input degrades to empty fields, never raises."""
    try:
        parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
    except Exception:
        parsed = None
    msg = parsed if isinstance(parsed, email.message.EmailMessage) else email.message.EmailMessage()

    from_raw = _header(msg, "from") or ""
    try:
        name, addr = email.utils.getaddresses([from_raw])[0]
    except Exception:
        name, addr = "", ""
    addr = _raw_text(addr).strip().lower()
    valid = addr.isprintable() and "\ufffd" not in addr  # mojibake is not an address
    from_addr = addr if valid and re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", addr) else ""
    from_name = re.sub(r"[^\S\u3000]+", " ", decode_header_value(name)).strip()
    subject = re.sub(r"[^\S\u3000]+", " ", decode_header_value(_header(msg, "subject") or ""))
    subject = subject.strip()

    own_id = _message_ids(_header(msg, "message-id"))
    if not own_id and (bare := (_header(msg, "message-id") or "").strip()) and " " not in bare:
        own_id = [f"<{_raw_text(bare).strip('<>')}>"]
    refs = _message_ids(_header(msg, "in-reply-to")) + _message_ids(_header(msg, "references"))

    try:
        text, attachments = _body_and_attachments(msg)
    except Exception:  # a last line of defence; each helper is already lenient
        text, attachments = "", ()
    return ParsedMail(
        message=msg,
        from_addr=from_addr,
        from_name=from_name,
        subject=subject,
        message_id=own_id[0] if own_id else None,
        references=tuple(dict.fromkeys(refs)),  # de-duplicated, first occurrence wins
        text=text.replace("\r\n", "\n").replace("\r", "\n"),
        attachments=attachments,
        auto_reason=_auto_reason(msg, envelope_from, addr, subject),
    )
