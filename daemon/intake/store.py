"""The one durable intake every channel writes to before it acknowledges anything."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from daemon.store.models import InboundMessage
from daemon.workqueue.queue import Queues, WorkQueue


def store_inbound(
    queue: WorkQueue, channel: str, envelope_from: str, rcpts: Sequence[str], raw: bytes
) -> int:
    """Commit the raw bytes and their work item in one transaction; return the intake id."""
    with queue.store.transaction() as s:
        row = InboundMessage(
            channel=channel,
            received_at=queue.clock.now(),
            envelope_from=envelope_from,
            envelope_to={"rcpt": list(rcpts)},
            raw=raw,
            sha256=hashlib.sha256(raw).hexdigest(),
        )
        s.add(row)
        s.flush()
        queue.enqueue(s, Queues.INBOUND, row.id)
        return row.id
