"""What makes two deliveries the same mail: a resend must be recognised, a new mail must not.

An MTA that lost our 250 sends the same queued bytes again; the same mail may also reach us
once by SMTP and once from an IMAP mailbox, where the delivery added its own trace headers.
The identity of a delivery is therefore

    sender | Message-ID | content hash | reply-token recipients

- sender: the envelope sender (lower case); for an empty one (a bounce) the From address.
- Message-ID: as written by the author (folding whitespace removed); empty when absent, in
  which case the content hash alone recognises the mail.
- content hash: SHA-256 of the whole message with the transport trace fields removed
  (TRACE_FIELDS, TRACE_PREFIXES: added per hop, so a resend or another route changes them)
  and line endings normalised. Everything the author wrote stays in: every other header
  (Subject, Date, From, Sender, Authentication-Results, DKIM-Signature...) and the body with
  its attachments. So a different mail that reuses a Message-ID (a broken client) is a new
  mail, and a copy whose Authentication-Results differ is judged on its own rather than
  swallowed.
- reply-token recipients: which reply address(es) the mail was delivered to, because an MTA
  that splits one mail per recipient delivers identical bytes for two different decisions.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta

from daemon.config import MailConfig
from daemon.security.tokens import is_token

# Fields a transport adds or rewrites on the way (RFC 5321 trace, delivery agents, ARC).
TRACE_FIELDS = frozenset({
    b"received", b"return-path", b"delivered-to", b"x-original-to", b"envelope-to",
    b"x-envelope-from", b"x-envelope-to", b"x-received", b"arc-seal",
    b"arc-message-signature", b"arc-authentication-results",
})
# Per-hop annotations of filters and Exchange, which one route adds and another does not.
TRACE_PREFIXES = (b"x-spam-", b"x-virus-", b"x-ms-exchange-", b"x-microsoft-antispam",
                  b"x-forefront-antispam-report")
LINE_END = re.compile(rb"\r+\n")  # CRLF (SMTP) or LF (a mailbox file), idempotently


@dataclass(frozen=True)
class Identity:
    key: str  # sha256 of sender|message-id|content|tokens: equal for a resend
    message_key: str | None  # sha256 of sender|message-id: spots a reused Message-ID
    sender: str
    message_id: str


@dataclass(frozen=True)
class Dedupe:
    """The settings store_inbound needs to recognise a resend (built from [mail])."""

    domain: str
    local_part: str
    window: timedelta

    @classmethod
    def from_config(cls, mail: MailConfig) -> Dedupe:
        return cls(mail.domain, mail.local_part, timedelta(days=mail.duplicate_window_days))

    def identify(self, envelope_from: str, rcpts: list[str], raw: bytes) -> Identity:
        fields, body = split_message(raw)
        kept = [f for f in fields if not is_trace(field_name(f))]
        content = hashlib.sha256(b"\n".join(kept) + b"\n\n" + body).hexdigest()
        message_id = " ".join(_text(first_value(kept, b"message-id")).split())
        sender = envelope_from.strip().strip("<>").lower()
        if not sender:
            sender = email.utils.parseaddr(_text(first_value(kept, b"from")))[1].lower()
        tokens = sorted({r.lower() for r in rcpts if self._is_reply_address(r)})
        key = _digest("v1", sender, message_id, content, ",".join(tokens))
        message_key = _digest("v1", sender, message_id) if message_id else None
        return Identity(key, message_key, sender, message_id)

    def _is_reply_address(self, address: str) -> bool:
        local, _, domain = address.lower().rpartition("@")
        base, plus, token = local.partition("+")
        return domain == self.domain and base == self.local_part and bool(plus) \
            and is_token(token)


def split_message(raw: bytes) -> tuple[list[bytes], bytes]:
    """Header fields (continuation lines joined, CRLF made LF) and the body (trailing line
    ends dropped: a relay may add or drop the last one)."""
    text = LINE_END.sub(b"\n", raw)
    if text.startswith(b"\n"):
        head, body = b"", text[1:]
    else:
        head, _, body = text.partition(b"\n\n")
    fields: list[bytes] = []
    for line in head.split(b"\n") if head else []:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\n" + line
        else:
            fields.append(line)
    return fields, body.rstrip(b"\n")


def is_trace(name: bytes) -> bool:
    return name in TRACE_FIELDS or name.startswith(TRACE_PREFIXES)


def field_name(field: bytes) -> bytes:
    name, sep, _ = field.partition(b":")
    return name.strip().lower() if sep else field.lower()


def first_value(fields: list[bytes], name: bytes) -> bytes:
    for f in fields:
        if field_name(f) == name:
            return f.partition(b":")[2]
    return b""


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace").replace("\n", " ").strip()


def _digest(*parts: str) -> str:
    data = "\0".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()
