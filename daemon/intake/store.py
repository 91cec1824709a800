"""The one durable intake every channel writes to before it acknowledges anything."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from daemon.store.models import InboundMessage
from daemon.workqueue.queue import Queues, WorkQueue


@dataclass(frozen=True)
class Stored:
    id: int
    new: bool  # False: this source_key was stored before (a channel retrying after a crash)


def store_inbound(
    queue: WorkQueue,
    channel: str,
    envelope_from: str,
    rcpts: Sequence[str],
    raw: bytes,
    source_key: str | None = None,
    meta: dict[str, Any] | None = None,
    outcome: str | None = None,
) -> Stored:
    """Commit the raw bytes and their work item in one transaction.

    With `outcome` the input is recorded as already decided (e.g. refused at the door)
    and no work item is queued.
    """
    if source_key is not None:
        with queue.store.transaction() as s:
            found = s.scalar(select(InboundMessage.id)
                             .where(InboundMessage.source_key == source_key))
        if found is not None:
            return Stored(found, False)
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
            s.add(row)
            s.flush()
            if outcome is None:
                queue.enqueue(s, Queues.INBOUND, row.id)
            return Stored(row.id, True)
    except IntegrityError:
        if source_key is None:
            raise
        with queue.store.transaction() as s:  # another instance stored it a moment ago
            found = s.scalar(select(InboundMessage.id)
                             .where(InboundMessage.source_key == source_key))
        if found is None:
            raise
        return Stored(found, False)
