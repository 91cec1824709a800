"""SMTP/LMTP listener (aiosmtpd): refuse unknown recipients at RCPT, 250 only once stored."""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Callable
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from daemon.config import MailConfig, SmtpConfig
from daemon.intake.duplicates import Dedupe
from daemon.intake.store import store_inbound
from daemon.outbox.returnpath import bounce_tag_shape
from daemon.security.tokens import is_token
from daemon.workqueue.queue import WorkQueue

log = logging.getLogger(__name__)


def accepts(cfg: MailConfig, address: str) -> bool:
    """The request address, a reply address local+TOKEN@domain, or a return path
    local+bounce-ID-MAC@domain (its MAC is checked in intake, where a forged one is ignored)."""
    local, sep, domain = address.lower().rpartition("@")
    if not sep or domain != cfg.domain:
        return False
    if local == cfg.local_part:
        return True
    base, plus, token = local.partition("+")
    return bool(plus) and base == cfg.local_part and (is_token(token) or bounce_tag_shape(token))


class IntakeHandler:
    """aiosmtpd handler object; storage runs in a thread so the event loop never blocks."""

    def __init__(
        self, queue: WorkQueue, mail: MailConfig, lmtp: bool, on_stored: Callable[[], None]
    ) -> None:
        self.queue = queue
        self.mail = mail
        self.lmtp = lmtp
        self.on_stored = on_stored
        self.dedupe = Dedupe.from_config(mail)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if not accepts(self.mail, address):
            log.info("refused recipient %s from %s", address, envelope.mail_from)
            return f"550 5.1.1 <{address}>: no such recipient here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        sender = envelope.mail_from or ""
        sender = "" if sender in ("<>", "") else sender
        loop = asyncio.get_running_loop()
        try:
            stored = await loop.run_in_executor(None, functools.partial(
                store_inbound, self.queue, "lmtp" if self.lmtp else "smtp", sender,
                list(envelope.rcpt_tos), raw, dedupe=self.dedupe,
            ))
        except Exception:
            log.exception("could not store a message from %s", sender)
            reply = "451 4.3.0 could not store the message; try again later"
        else:
            if stored.duplicate_of is not None:  # a resend: accepted again, acted on once
                reply = (f"250 2.0.0 duplicate of intake {stored.duplicate_of}, already "
                         f"stored; recorded as intake {stored.id}, not acted on again")
            else:
                self.on_stored()
                reply = f"250 2.0.0 stored as intake {stored.id}"
        if self.lmtp:  # LMTP answers once per recipient
            return "\r\n".join([reply] * len(envelope.rcpt_tos))
        return reply


class IntakeController(Controller):
    def __init__(self, handler: IntakeHandler, cfg: SmtpConfig) -> None:
        self.lmtp = cfg.lmtp
        super().__init__(
            handler,
            hostname=cfg.host,
            port=cfg.port,
            data_size_limit=cfg.max_message_bytes,
            ident="ringi",
        )

    def start(self) -> None:
        """Fail at once on a taken port (aiosmtpd would only notice after its ready timeout)."""
        family = socket.AF_INET6 if ":" in self.hostname else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((self.hostname, self.port))
        super().start()

    def factory(self) -> SMTP:
        cls = LMTP if self.lmtp else SMTP
        return cls(self.handler, **self.SMTP_kwargs)
