"""The durable outbox: a mail exists once its transaction commits, and is sent from there."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.policy import SMTP

from sqlalchemy.orm import Session

from daemon.clock import Clock
from daemon.outbox.transport import Transport
from daemon.store.db import Store
from daemon.store.models import OutboundMail
from daemon.workqueue.queue import Claimed, PermanentError, Queues, WorkQueue

log = logging.getLogger(__name__)


def store_mail(
    s: Session, queue: WorkQueue, msg: EmailMessage, template: str, case_id: int | None,
    queued: bool = True,
) -> OutboundMail:
    """Keep the exact bytes; `queued=False` when the caller sends them itself (executions)."""
    row = OutboundMail(
        created_at=queue.clock.now(),
        case_id=case_id,
        template=template,
        recipient=str(msg["To"].addresses[0].addr_spec).lower(),
        subject=str(msg["Subject"]),
        message_id=str(msg["Message-ID"]),
        raw=msg.as_bytes(policy=SMTP),
    )
    s.add(row)
    s.flush()
    if queued:
        queue.enqueue(s, Queues.OUTBOUND, row.id)
    return row


class OutboxRunner:
    """Sends one claimed mail; temporary failures retry with back-off, permanent ones die."""

    queue_name: str = Queues.OUTBOUND

    def __init__(self, store: Store, queue: WorkQueue, transport: Transport, clock: Clock) -> None:
        self.store = store
        self.queue = queue
        self.transport = transport
        self.clock = clock

    def process(self, item: Claimed) -> None:
        with self.store.transaction() as s:
            mail = s.get(OutboundMail, item.ref_id)
            if mail is None:
                raise PermanentError(f"outbound mail {item.ref_id} is missing")
            message_id, recipient, raw = mail.message_id, mail.recipient, mail.raw
        try:
            self.transport.send(recipient, raw)
        except PermanentError as exc:
            log.error("mail %s to %s failed permanently: %s", message_id, recipient, exc)
            raise
        with self.store.transaction() as s:
            row = s.get(OutboundMail, item.ref_id)
            if row is not None:
                row.sent_at = self.clock.now()
            self.queue.complete(s, item)
