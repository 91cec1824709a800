"""Read a bounce: an RFC 3464 delivery status notification or a vendor's plain-text one.

A DSN (multipart/report; report-type=delivery-status) says per recipient what happened
(Action, Status, Diagnostic-Code) and usually carries the bounced mail or its headers
(message/rfc822, text/rfc822-headers), whose Message-ID names what bounced. Older or odd
servers (qmail, some appliances, Exchange without a report part) only write prose; those are
recognised by their sender and wording, and read for addresses, an enhanced status code and
the copied Message-ID. Every text that leaves this module is sanitised: no control
characters, whitespace collapsed, length capped — it ends up in case history and CLI output.

Nothing here decides whether a bounce is genuine: the caller matches it to a mail ringi sent.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass

from daemon.parsing.charsets import decode_bytes
from daemon.security.text import strip_unicode_other

DIAGNOSTIC_MAX = 500
MAX_PARTS = 200  # a bounce has a handful; a hostile one may have thousands
_MSG_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]{1,250}>")  # printable ASCII: safe to look up
_ADDR = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})")
_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_REPLY_CODE = re.compile(r"(?<![\d.])([45])\d\d(?=[\s-])")
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery status notification|failure notice|returned mail|"
    r"mail delivery (?:failed|failure|subsystem)|delivery failure|non-?delivery|"
    r"could not be delivered|delivery has failed|delivery (?:delayed|notification)|"
    r"配信不能|配送不能|配信エラー|送信エラー|未配達|配信の遅延", re.I)
_BOUNCE_TEXT = re.compile(
    r"could not be delivered|couldn't be delivered|wasn't able to deliver|"
    r"was not able to deliver|unable to deliver|delivery has failed|permanent error|"
    r"undeliverable|user unknown|mailbox unavailable|no such user|recipient not found|"
    r"has not yet been delivered|delivery (?:is )?delayed|will (?:continue|keep) trying", re.I)
_DELAY = re.compile(r"delay|will (?:continue|keep) (?:trying|to try)|will (?:be )?retr|"
                    r"not yet been delivered|still trying|遅延", re.I)
# Where a prose bounce's own words end and the copied original begins.
_COPY_START = re.compile(
    r"^(?:-+ ?(?:below this line|original message|the original message|this is a copy)|"
    r"original message headers|(?:return-path|received|message-id|from|to|subject|date):)",
    re.I | re.M)
_ROBOT_LOCALS = ("mailer-daemon", "postmaster")


@dataclass(frozen=True)
class RecipientStatus:
    """One recipient's fate; addresses are lower-case, '' when the report gives none."""

    recipient: str
    original: str
    action: str  # failed, delayed, delivered, relayed, expanded (prose: failed or delayed)
    status: str  # enhanced status code like 5.1.1, '' if none was given
    diagnostic: str


@dataclass(frozen=True)
class BounceReport:
    kind: str  # "dsn" (RFC 3464 fields) or "text" (prose only)
    reporter: str  # Reporting-MTA, or the From address of a prose bounce
    recipients: tuple[RecipientStatus, ...]
    original_ids: tuple[str, ...]  # Message-IDs of the bounced mail, most reliable first

    def addresses(self) -> set[str]:
        return {a for r in self.recipients for a in (r.recipient, r.original) if a}


def sanitise(text: str, limit: int = DIAGNOSTIC_MAX) -> str:
    """One line of printable text: control characters (ESC, BEL, C1, bidi) removed."""
    # Any Unicode category C, not just the control table: a diagnostic is only ever read.
    text = strip_unicode_other(text, " ")
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- parts

def _parts(msg: email.message.Message) -> Iterator[email.message.Message]:
    """Every part, depth first, bounded in count and depth (attached messages included)."""
    stack: list[tuple[email.message.Message, int]] = [(msg, 0)]
    seen = 0
    while stack and seen < MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        yield part
        try:
            payload = part.get_payload()
        except Exception:
            continue
        if isinstance(payload, list) and depth < 8:
            subs = [p for p in payload if isinstance(p, email.message.Message)]
            stack.extend((p, depth + 1) for p in reversed(subs))


def _ctype(part: email.message.Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "text/plain"


def _raw_header(msg: email.message.Message, name: str) -> str:
    try:
        return next((str(v) for k, v in msg.raw_items() if k.lower() == name), "")
    except Exception:
        return ""


def _text(part: email.message.Message) -> str:
    """A leaf's decoded text, or '' (never raises)."""
    try:
        payload = part.get_payload()
        if isinstance(payload, list):  # message/* parsed into sub-messages
            data = b"\n".join(p.as_bytes() for p in payload
                              if isinstance(p, email.message.Message))
        else:
            raw = part.get_payload(decode=True)
            data = raw if isinstance(raw, bytes) else b""
        return decode_bytes(data[:1_000_000], part.get_content_charset()).replace("\r\n", "\n")
    except Exception:
        return ""


def _fields(block: str) -> dict[str, str]:
    """One RFC 3464 field group; continuation lines unfolded, names lower-case."""
    fields: dict[str, str] = {}
    name = ""
    for line in block.split("\n"):
        if line[:1] in (" ", "\t") and name:
            fields[name] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            name = key.strip().lower()
            fields.setdefault(name, value.strip())
    return fields


def _address(value: str) -> str:
    """'rfc822; Brown@Example.com' -> 'brown@example.com'."""
    value = value.split(";", 1)[1] if ";" in value else value
    m = _ADDR.search(value.strip().strip("<>"))
    return m.group(0).lower().rstrip(".") if m else ""


def _status_blocks(part: email.message.Message) -> list[dict[str, str]]:
    try:
        payload = part.get_payload()
        if isinstance(payload, list):
            blocks = ["\n".join(f"{k}: {v}" for k, v in p.raw_items())
                      for p in payload if isinstance(p, email.message.Message)]
        else:
            blocks = re.split(r"\n\s*\n", _text(part))
    except Exception:
        return []
    return [f for f in (_fields(b) for b in blocks) if f]


def _ids_in_headers(text: str) -> list[str]:
    m = re.search(r"^message-id:[ \t]*(.*(?:\n[ \t].*)*)", text, re.I | re.M)
    return _MSG_ID.findall(m.group(1))[:1] if m else []


def _original_ids(msg: email.message.Message) -> list[str]:
    ids: list[str] = []
    for part in _parts(msg):
        ctype = _ctype(part)
        if ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and \
                    isinstance(payload[0], email.message.Message):
                ids += _MSG_ID.findall(_raw_header(payload[0], "message-id"))[:1]
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers",
                       "message/global-headers"):
            ids += _ids_in_headers(_text(part))
    return ids


# --------------------------------------------------------------------------- kinds

def _from_daemon(msg: email.message.Message) -> bool:
    sender = _raw_header(msg, "from").lower()
    return any(re.search(rf"(?<![\w.+-]){r}(?:@|>|\s*$)", sender) for r in _ROBOT_LOCALS)


def _dsn(msg: email.message.Message) -> BounceReport | None:
    groups: list[dict[str, str]] = []
    for part in _parts(msg):
        if _ctype(part) in ("message/delivery-status", "message/global-delivery-status"):
            groups = _status_blocks(part)
            break
    per_recipient = [g for g in groups[1:] if "action" in g or "final-recipient" in g]
    if not per_recipient:
        return None
    reporter = sanitise(groups[0].get("reporting-mta", "").split(";")[-1], 200)
    recipients = tuple(RecipientStatus(
        recipient=_address(g.get("final-recipient", "")),
        original=_address(g.get("original-recipient", "")),
        action=sanitise(g.get("action", "failed"), 16).lower() or "failed",
        status=sanitise(g.get("status", ""), 32),
        diagnostic=sanitise(g.get("diagnostic-code", "").split(";", 1)[-1]),
    ) for g in per_recipient)
    return BounceReport("dsn", reporter, recipients, ())


def _prose(msg: email.message.Message, subject: str) -> BounceReport:
    texts = [_text(p) for p in _parts(msg) if _ctype(p) == "text/plain"]
    full = "\n".join(texts)[:200_000]  # a bounce's own words come first
    copy = _COPY_START.search(full)
    own = full[: copy.start()] if copy else full
    addresses = [a.lower().rstrip(".") for a in _ADDR.findall(own)]
    addresses = [a for a in dict.fromkeys(addresses)
                 if a.split("@")[0] not in _ROBOT_LOCALS]
    enhanced = _ENHANCED.search(own)
    reply = _REPLY_CODE.search(own)
    status = ".".join(enhanced.groups()) if enhanced else (f"{reply.group(1)}.0.0" if reply
                                                            else "")
    delayed = not status.startswith("5") and bool(_DELAY.search(subject + "\n" + own))
    lines = [ln for ln in own.split("\n") if _ENHANCED.search(ln) or _REPLY_CODE.search(ln)
             or any(a in ln.lower() for a in addresses)]
    diagnostic = sanitise(" ".join(lines) or own)
    action = "delayed" if delayed else "failed"
    recipients = tuple(RecipientStatus(a, "", action, status, diagnostic)
                       for a in addresses or [""])  # no address found: still what happened
    reporter = sanitise(_raw_header(msg, "from"), 200)
    return BounceReport("text", reporter, recipients, ())


def parse_bounce(msg: email.message.Message, subject: str,
                 envelope_from: str | None) -> BounceReport | None:
    """The report if `msg` is a bounce, None if it is something else (a read receipt, an
    out-of-office reply, a person). Never raises."""
    try:
        return _parse(msg, subject, envelope_from)
    except Exception:  # a last line of defence; the helpers are already lenient
        return None


def _parse(msg: email.message.Message, subject: str,
           envelope_from: str | None) -> BounceReport | None:
    ctype = _ctype(msg)
    report_type = (msg.get_param("report-type", "") or "") if ctype == "multipart/report" \
        else ""
    if ctype == "multipart/report" and str(report_type).lower() not in ("delivery-status", ""):
        return None  # a read receipt (disposition-notification) or another report
    ndr_header = any(k.lower() == "x-ms-exchange-message-is-ndr" for k in msg)
    report = _dsn(msg) if ctype == "multipart/report" or ndr_header else None
    if report is None:
        prose = "\n".join(_text(p) for p in _parts(msg) if _ctype(p) == "text/plain")[:20000]
        null = envelope_from is not None and envelope_from.strip() in ("", "<>")
        subject_says = bool(_BOUNCE_SUBJECT.search(subject))
        # A vacation reply also comes from <>; only a mail daemon's wording in the subject,
        # or a mail daemon's From, makes prose a bounce.
        daemon = _from_daemon(msg) and (subject_says or bool(_BOUNCE_TEXT.search(prose)))
        if not (ndr_header or ctype == "multipart/report" or daemon or (null and subject_says)):
            return None
        report = _prose(msg, subject)
    ids = _original_ids(msg)
    if report.kind == "text" and not ids:  # qmail and friends copy the mail into the text
        full = "\n".join(_text(p) for p in _parts(msg) if _ctype(p) == "text/plain")
        ids = _ids_in_headers(full[:200_000])
    ids += _MSG_ID.findall(_raw_header(msg, "in-reply-to"))
    ids += _MSG_ID.findall(_raw_header(msg, "references"))
    return BounceReport(report.kind, report.reporter, report.recipients,
                        tuple(dict.fromkeys(ids))[:20])
