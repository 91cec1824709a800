"""Build outgoing messages: threading, auto-submitted marking, reply tokens in Reply-To."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import quote

from daemon.clock import Clock
from daemon.config import MailConfig
from daemon.notify.templates import Rendered


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
    ) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = Address(self.cfg.from_name, addr_spec=self.cfg.request_address)
        msg["To"] = Address(to_name, addr_spec=to_addr) if to_name else to_addr
        msg["Subject"] = rendered.subject
        msg["Date"] = format_datetime(self.clock.now())
        msg["Message-ID"] = self.new_message_id()
        refs = [r for r in (*references, thread) if r]
        refs = list(dict.fromkeys(refs))
        if refs:
            msg["In-Reply-To"] = refs[-1]
            msg["References"] = " ".join(refs)
        if reply_token:
            msg["Reply-To"] = reply_address(self.cfg, reply_token)
        elif reply_to:
            msg["Reply-To"] = reply_to
        # Loop protection: tell other robots (vacation responders, Exchange) not to answer.
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Auto-Response-Suppress"] = "All"
        msg.set_content(rendered.body, charset="utf-8")
        for f in attachments:
            msg.add_attachment(f.data, maintype=f.maintype, subtype=f.subtype,
                               filename=f.filename,
                               params={"charset": f.charset} if f.charset else {})
        return msg
