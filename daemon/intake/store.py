"""The one durable intake every channel writes to before it acknowledges anything.

A resend of a mail already stored (daemon/intake/duplicates.py says what "the same" means)
is stored as a row of its own with `duplicate_of` and an outcome saying so, and is never
queued: it is acknowledged and recorded, and acted on once. The first copy holds the unique
`dedupe_key` while the window lasts; the check and the insert are one transaction, and two
instances inserting the same key at once meet at the unique constraint, where the loser
stores its copy as the duplicate. A copy arriving after the window takes the key over.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from daemon.intake.duplicates import Dedupe, Identity
from daemon.store.models import InboundMessage
from daemon.workqueue.queue import Queues, WorkQueue

log = logging.getLogger(__name__)

ATTEMPTS = 3  # a lost race at the unique key is retried; the retry then finds the winner


@dataclass(frozen=True)
class Stored:
    id: int
    new: bool  # False: this source_key was stored before (a channel retrying after a crash)
    duplicate_of: int | None = None  # a resend of that intake: recorded, not acted on


def store_inbound(
    queue: WorkQueue,
    channel: str,
    envelope_from: str,
    rcpts: Sequence[str],
    raw: bytes,
    source_key: str | None = None,
    meta: dict[str, Any] | None = None,
    outcome: str | None = None,
    dedupe: Dedupe | None = None,
) -> Stored:
    """Commit the raw bytes and their work item in one transaction.

    With `outcome` the input is recorded as already decided (e.g. refused at the door)
    and no work item is queued. With `dedupe` a resend of a stored mail is recognised.
    """
    if source_key is not None:
        found = _by_source_key(queue, source_key)
        if found is not None:
            return found
    ident = dedupe.identify(envelope_from, list(rcpts), raw) if dedupe else None
    for attempt in range(ATTEMPTS):
        try:
            with queue.store.transaction() as s:
                row = InboundMessage(
                    channel=channel,
                    received_at=queue.clock.now(),
                    envelope_from=envelope_from,
                    envelope_to={"rcpt": list(rcpts)},
                    raw=raw,
                    sha256=hashlib.sha256(raw).hexdigest(),
                    source_key=source_key,
                    meta=meta,
                    outcome=outcome,
                )
                original = None
                if ident is not None and dedupe is not None:
                    original = _claim(s, row, ident, dedupe)
                s.add(row)
                s.flush()
                if original is None and outcome is None:
                    queue.enqueue(s, Queues.INBOUND, row.id)
                stored = Stored(row.id, True, original)
        except IntegrityError:
            # Another instance stored this source_key or dedupe_key a moment ago.
            if source_key is not None:
                found = _by_source_key(queue, source_key)
                if found is not None:
                    return found
            if ident is None or attempt == ATTEMPTS - 1:
                raise
            continue
        if stored.duplicate_of is not None:
            log.info("intake %s (%s) from %s is a duplicate of intake %s (Message-ID %s): "
                     "acknowledged, not acted on again", stored.id, channel,
                     ident.sender if ident else envelope_from, stored.duplicate_of,
                     ident.message_id if ident and ident.message_id else "none")
        return stored
    raise AssertionError("unreachable")  # pragma: no cover


def _claim(s: Session, row: InboundMessage, ident: Identity, dedupe: Dedupe) -> int | None:
    """Fill the row's identity; the id of the stored original if this is a resend."""
    since = row.received_at - dedupe.window
    row.message_key = ident.message_key
    earlier = s.scalar(select(InboundMessage).where(InboundMessage.dedupe_key == ident.key))
    if earlier is not None and earlier.received_at >= since:
        row.duplicate_of = earlier.id
        row.outcome = f"duplicate of intake {earlier.id}: acknowledged, not acted on again"
        return earlier.id
    if earlier is not None:  # outside the window: a genuinely new sending of the same mail
        earlier.dedupe_key = None
        s.flush()
    row.dedupe_key = ident.key
    if ident.message_key is not None:
        reused = s.scalar(select(InboundMessage.id).where(
            InboundMessage.message_key == ident.message_key,
            InboundMessage.duplicate_of.is_(None),
            InboundMessage.received_at >= since).limit(1))
        if reused is not None:
            log.info("mail from %s reuses Message-ID %s of intake %s with different content; "
                     "treated as a new mail", ident.sender, ident.message_id, reused)
    return None


def _by_source_key(queue: WorkQueue, source_key: str) -> Stored | None:
    with queue.store.transaction() as s:
        found = s.execute(select(InboundMessage.id, InboundMessage.duplicate_of)
                          .where(InboundMessage.source_key == source_key)).first()
    return None if found is None else Stored(found[0], False, found[1])


def recent_duplicates(s: Session, since: datetime) -> tuple[int, InboundMessage | None]:
    """How many resends were recognised since then, and the latest (for `ringi status`)."""
    recent = (InboundMessage.duplicate_of.is_not(None), InboundMessage.received_at >= since)
    count = int(s.scalar(select(func.count()).select_from(InboundMessage).where(*recent)) or 0)
    latest = s.scalar(select(InboundMessage).where(*recent)
                      .order_by(InboundMessage.id.desc()).limit(1))
    return count, latest
