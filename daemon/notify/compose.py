"""Build outgoing messages: threading, auto-submitted marking, reply tokens in Reply-To.

Composing never raises for any text: titles, names and template values come from mail and
files, and a mail that cannot be built would cost the whole intake item (and retry it to
the dead-letter state). Every text is cleaned here for the header or body it goes into.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import quote

from daemon.clock import Clock
from daemon.config import MailConfig
from daemon.notify.html import Route, html_body
from daemon.notify.templates import Rendered
from daemon.outbox.addresses import Unsendable, envelope
from daemon.security.text import one_line, replace_surrogates, strip_controls

log = logging.getLogger(__name__)

TITLE_MAX = 200  # characters of a case title (a subject is the usual source)
HEADER_MAX = 1000  # characters of any header text we write (folded on the wire)

_SPACES = re.compile(r"[^\S\u3000]+")
# "=?" in a header text would be read as the start of an RFC 2047 encoded word by Python's
# header parser and by every receiving client: a title `=?utf-8?q?a=0D=0ABcc:...?=` would
# otherwise be decoded into new header lines. A WORD JOINER keeps the text as written.
_EW_START = re.compile(r"=(?=\?)")


def clean_line(text: str, limit: int = TITLE_MAX) -> str:
    """One line of readable text: no surrogates (U+FFFD instead), no control or bidi
    override characters, whitespace collapsed, at most `limit` characters."""
    return _cap(_SPACES.sub(" ", one_line(text)).strip(), limit)


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def header_text(text: str, limit: int = HEADER_MAX) -> str:
    """Text for a header (Subject, a display name): a clean line no parser decodes.

    Cleaned first, so removing a character cannot bring a `=` and a `?` together after."""
    return _cap(_EW_START.sub("=\u2060", clean_line(text, len(text) + 1)), limit)


def body_text(text: str) -> str:
    """A body for set_content: surrogates replaced, controls other than tab/newline gone."""
    text = replace_surrogates(text).replace("\r\n", "\n").replace("\r", "\n")
    # Unlike a header line, a body keeps bidi characters (mixed-direction prose needs them).
    return strip_controls(text, keep="\t\n")


@dataclass(frozen=True)
class OutgoingFile:
    """A file attached to an outgoing mail (e.g. an order's data); base64, bytes unchanged."""

    filename: str
    maintype: str
    subtype: str
    data: bytes
    charset: str | None = None


def thread_id_for(number: str, domain: str) -> str:
    """A stable per-case Message-ID every mail about the case refers to."""
    return f"<case.{number}@{domain}>"


def reply_address(cfg: MailConfig, token: str) -> str:
    return f"{cfg.local_part}+{token}@{cfg.domain}"


def decision_link(cfg: MailConfig, token: str, subject: str, word: str) -> str:
    return (
        f"mailto:{reply_address(cfg, token)}?subject={quote('Re: ' + subject)}"
        f"&body={quote(word)}"
    )


class Composer:
    def __init__(self, cfg: MailConfig, clock: Clock) -> None:
        self.cfg = cfg
        self.clock = clock

    def new_message_id(self) -> str:
        return f"<{uuid.uuid4().hex}@{self.cfg.domain}>"

    def compose(
        self,
        rendered: Rendered,
        to_addr: str,
        to_name: str = "",
        *,
        thread: str | None = None,
        references: tuple[str, ...] = (),
        reply_token: str | None = None,
        reply_to: str | None = None,
        attachments: Sequence[OutgoingFile] = (),
        route: Route | None = None,
        lang: str = "en",
    ) -> EmailMessage:
        """The text part is the whole mail (ringi reads replies against it); with
        `[mail] html` an HTML alternative of the same text follows (with `route` drawn as a
        progress line), and attachments make it multipart/mixed around the two."""
        msg = EmailMessage()
        msg["From"] = _address(self.cfg.from_name, self.cfg.request_address)
        msg["To"] = _address(to_name, to_addr)
        msg["Subject"] = header_text(rendered.subject)
        msg["Date"] = format_datetime(self.clock.now())
        msg["Message-ID"] = self.new_message_id()
        refs = [r for r in (*references, thread) if r]
        refs = list(dict.fromkeys(refs))
        if refs:
            msg["In-Reply-To"] = refs[-1]
            msg["References"] = " ".join(refs)
        if reply_token:
            msg["Reply-To"] = reply_address(self.cfg, reply_token)
        elif reply_to and _sendable(reply_to):
            msg["Reply-To"] = _address("", reply_to)
        # Loop protection: tell other robots (vacation responders, Exchange) not to answer.
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Auto-Response-Suppress"] = "All"
        text = body_text(rendered.body)
        msg.set_content(text, charset="utf-8")
        if self.cfg.html:
            msg.add_alternative(html_body(text, self.cfg.request_address, route, lang),
                                subtype="html", charset="utf-8")
        for f in attachments:
            msg.add_attachment(f.data, maintype=f.maintype, subtype=f.subtype,
                               filename=clean_line(f.filename, HEADER_MAX) or "data",
                               params={"charset": f.charset} if f.charset else {})
        return msg


def _sendable(addr: str) -> bool:
    try:
        envelope(addr)
    except Unsendable:
        return False
    return True


def _address(name: str, addr: str) -> Address | str:
    """A To/From value that serialises whatever the directory holds.

    An address no relay could take still gets a mail (stored, then failed at once as
    permanent by the outbox, which records it on the case and tells the administrator), so
    it is written as an empty group here. A non-ASCII local part is written bare (the mail is
    then serialised for SMTPUTF8).
    """
    try:
        env = envelope(addr)
    except Unsendable as exc:
        log.warning("composing a mail to an unsendable address: %s", exc)
        return "undisclosed-recipients:;"
    if env.utf8:
        return env.address
    local, _, domain = env.address.rpartition("@")
    try:
        return Address(header_text(name), local, domain)
    except (ValueError, TypeError, MessageError) as exc:  # defects are ValueErrors
        log.warning("display name %r dropped for %s: %s", name, env.address, exc)
        return env.address
