"""Decode an incoming raw email into the few Unicode fields ringi needs.

Japanese mail in the wild is messy: ISO-2022-JP with Windows (CP50220) extensions,
"Shift_JIS" that is really cp932, undeclared 8-bit header bytes and bogus charset labels.
The stdlib copes with standards-compliant mail; the fallbacks here and in
:mod:`daemon.parsing.charsets` make sure one odd message can never crash intake or turn
an approver's words into mojibake.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import email.utils
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from daemon.parsing.charsets import _raw_text, _to_bytes, decode_bytes, decode_header_value
from daemon.parsing.htmltext import html_to_text
from daemon.parsing.sender import Sender, header_lines, read_sender
from daemon.security.text import strip_unicode_other

__all__ = [
    "Attachment",
    "ParsedMail",
    "decode_bytes",
    "decode_header_value",
    "html_to_text",
    "parse_mail",
]


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
    # Why From/Sender identify nobody (then from_addr and from_name are empty): such a mail
    # changes nothing and is never answered, see daemon.parsing.sender.
    sender_problem: str | None = None


# --------------------------------------------------------------------------- headers

def _header(msg: email.message.Message, name: str) -> str | None:
    """First raw value of a header: the policy's decoded view has already lost 8-bit bytes."""
    values = _headers(msg, name)
    return values[0] if values else None


def _headers(msg: email.message.Message, name: str) -> list[str]:
    """Every raw value of a header, top first."""
    try:
        return [str(v) for k, v in msg.raw_items() if k.lower() == name]
    except Exception:
        return []


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
        elif m := re.fullmatch(re.escape(name) + r"\*([0-9]{1,4})(\*?)", key, re.ASCII):
            # RFC 2231 section numbers; a longer one is no parameter worth an int(...)
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
    # Any Unicode category C: a file name needs no format or private-use character either.
    return strip_unicode_other(name).strip()


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
        # A named part is a file whatever its disposition: Apple Mail and Outlook send pasted
        # images and PDFs "inline" with a filename. Only an unnamed inline part (an HTML
        # body's cid: image, a second text part) is left out, unless it looks like a form.
        form_like = ctype.startswith(_FORM_TYPES) or filename.lower().endswith(_FORM_EXTENSIONS)
        if disposition == "attachment" or filename or form_like:
            name = filename or f"attachment-{len(attachments) + 1}"
            attachments.append(Attachment(name, ctype, _payload(part)))
    text = plain if plain is not None else html or ""
    return text, tuple(attachments)


# --------------------------------------------------------------------------- auto replies

OUT_OF_OFFICE = "out of office"
# Subjects of vacation and out-of-office responders: Outlook/Exchange in English, Japanese,
# German, French, Spanish; generic responders. An auto-reply is matched only at the start.
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?(?:reply|response)"
    r"|auto:|自動応答|自動返信|不在|automatische antwort|abwesenheit|réponse automatique"
    r"|respuesta automática)", re.I)


def _auto_reason(msg: email.message.Message, envelope_from: str | None, sender: str,
                 subject: str) -> str | None:
    """Why this mail must never be answered (RFC 3834 plus common vendor conventions).

    Delivery reports and lists come first. What is left and carries an auto-reply's marks
    (RFC 3834 `auto-replied`, `X-Autoreply`, an out-of-office subject such as Exchange's
    "Automatic reply:" / "自動応答:", or `Precedence: bulk` on a mail that answers another, as
    some vacation responders send) is `OUT_OF_OFFICE`: a signal about the person it came
    from, acted on only when it answers an approval request from the asked approver's own
    address (daemon/intake/away.py). `X-Auto-Response-Suppress` is no mark: it asks others
    not to answer (Outlook and ringi itself set it), whatever the mail is.
    """
    def value(name: str) -> str | None:
        raw = _header(msg, name)
        return None if raw is None else _params(raw)[0]

    auto_submitted = value("auto-submitted")
    answers = bool(_message_ids(_header(msg, "in-reply-to"))
                   or _message_ids(_header(msg, "references")))
    local_parts = {a.strip(" <>").rsplit("@", 1)[0].lower() for a in (sender, envelope_from or "")}
    listed = value("list-id") is not None or value("list-unsubscribe") is not None
    reply_marks = (
        auto_submitted == "auto-replied",
        value("x-autoreply") == "yes" or value("x-autorespond") is not None,
        bool(_AUTO_SUBJECT.match(subject)),
        answers and value("precedence") in ("bulk", "junk"),
    )
    # RFC 3834 responders send from the null sender, as bounces do: a bounce is told apart
    # by its sender (MAILER-DAEMON, postmaster) or its report, not by its envelope.
    checks = (
        (bool(local_parts & {"mailer-daemon", "postmaster"}), "bounce (mailer-daemon)"),
        (_ctype(msg) == "multipart/report", "delivery/read report"),
        (any(reply_marks) and not listed, OUT_OF_OFFICE),
        (envelope_from is not None and envelope_from.strip() in ("", "<>"), "bounce (null sender)"),
        (listed, "mailing list"),
        (auto_submitted is not None and auto_submitted != "no", "auto-submitted"),
        (value("precedence") in ("bulk", "junk", "list"), "bulk mail"),
    )
    return next((reason for hit, reason in checks if hit), None)


def answered_ids(mail: ParsedMail) -> tuple[str, ...]:
    """The mails this one answers, most recent first: In-Reply-To, then References from the
    last (the parent) back to the thread's root."""
    refs = _message_ids(_header(mail.message, "in-reply-to")) + \
        _message_ids(_header(mail.message, "references"))[::-1]
    return tuple(dict.fromkeys(refs))


# --------------------------------------------------------------------------- entry point

_MSG_ID = re.compile(r"<[^<>\s]+>")


def _message_ids(raw: str | None) -> list[str]:
    return _MSG_ID.findall(_raw_text(raw)) if raw else []


def _loose_addr(msg: email.message.Message) -> str:
    """Best-effort From address, only to recognise robots (MAILER-DAEMON) among refused mail."""
    try:
        return email.utils.getaddresses([_header(msg, "from") or ""])[0][1]
    except Exception:
        return ""


def parse_mail(raw: bytes, envelope_from: str | None = None) -> ParsedMail:
    """Parse raw RFC 5322 bytes; malformed input degrades to empty fields, never raises."""
    try:
        parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
    except Exception:
        parsed = None
    msg = parsed if isinstance(parsed, email.message.EmailMessage) else email.message.EmailMessage()

    froms, senders = _headers(msg, "from"), _headers(msg, "sender")
    sender = read_sender(froms, senders)
    if sender.problem is None and (header_lines(raw, "from") != len(froms)
                                   or header_lines(raw, "sender") != len(senders)):
        sender = Sender("", "", "a From or Sender line that is not read the same way everywhere")
    from_addr, from_name = sender.addr, sender.name
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
        auto_reason=_auto_reason(msg, envelope_from, from_addr or _loose_addr(msg), subject),
        sender_problem=sender.problem,
    )
