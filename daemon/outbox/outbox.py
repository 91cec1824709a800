"""The durable outbox: a mail exists once its transaction commits, and is sent from there."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8

from sqlalchemy.orm import Session

from daemon.clock import Clock
from daemon.outbox.returnpath import ReturnPaths
from daemon.outbox.transport import Transport
from daemon.store.db import Store
from daemon.store.models import Case, OutboundMail
from daemon.workqueue.queue import Claimed, PermanentError, Queues, WorkQueue

log = logging.getLogger(__name__)


def wire_bytes(msg: EmailMessage) -> bytes:
    """The message as sent: 7-bit headers, or UTF-8 ones where an address needs SMTPUTF8
    (the transport then requires the relay to offer it)."""
    for name in ("From", "To", "Reply-To"):
        for addr in getattr(msg[name], "addresses", ()):
            if not addr.username.isascii():  # the SMTP policy would encode it (invalid)
                return msg.as_bytes(policy=SMTPUTF8)
    return msg.as_bytes(policy=SMTP)


def _to_address(msg: EmailMessage) -> str:
    addresses = getattr(msg["To"], "addresses", ())
    return str(addresses[0].addr_spec) if addresses else ""


def store_mail(
    s: Session, queue: WorkQueue, msg: EmailMessage, template: str, case_id: int | None,
    queued: bool = True, recipient: str | None = None,
) -> OutboundMail:
    """Keep the exact bytes; `queued=False` when the caller sends them itself (executions).

    `recipient` is the envelope address as the directory has it (the To header may hold
    none when the address cannot be written; sending then fails as permanent)."""
    row = OutboundMail(
        created_at=queue.clock.now(),
        case_id=case_id,
        template=template,
        recipient=(recipient if recipient is not None else _to_address(msg)).lower()[:320],
        subject=str(msg["Subject"]),
        message_id=str(msg["Message-ID"]),
        raw=wire_bytes(msg),
    )
    s.add(row)
    s.flush()
    if queued:
        queue.enqueue(s, Queues.OUTBOUND, row.id)
    return row


class OutboxRunner:
    """Sends one claimed mail; temporary failures retry with back-off, permanent ones die."""

    queue_name: str = Queues.OUTBOUND

    def __init__(self, store: Store, queue: WorkQueue, transport: Transport, clock: Clock,
                 return_paths: ReturnPaths | None = None) -> None:
        self.store = store
        self.queue = queue
        self.transport = transport
        self.clock = clock
        self.return_paths = return_paths  # VERP: a bounce names the mail it is about

    def process(self, item: Claimed) -> None:
        with self.store.transaction() as s:
            mail = s.get(OutboundMail, item.ref_id)
            if mail is None:
                raise PermanentError(f"outbound mail {item.ref_id} is missing")
            message_id, recipient, raw = mail.message_id, mail.recipient, mail.raw
            case = s.get(Case, mail.case_id) if mail.case_id is not None else None
            label = "-".join(x for x in (f"{mail.created_at:%Y%m%d-%H%M%S}", f"{mail.id:06d}",
                                         case.number if case else "", mail.template) if x)
        try:
            self.transport.send(recipient, raw, sender=self.return_paths.address(item.ref_id)
                                if self.return_paths else None, label=label)
        except PermanentError as exc:
            log.error("mail %s to %s failed permanently: %s", message_id, recipient, exc)
            raise
        with self.store.transaction() as s:
            row = s.get(OutboundMail, item.ref_id)
            if row is not None:
                row.sent_at = self.clock.now()
            self.queue.complete(s, item)
