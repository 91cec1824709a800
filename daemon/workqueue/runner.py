"""A runner thread: claim one item, process it, commit, repeat (Mailman-style)."""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Protocol

from daemon.workqueue.queue import (
    Claimed,
    DeadLetterHook,
    PermanentError,
    State,
    TemporaryError,
    WorkQueue,
)

log = logging.getLogger(__name__)


class Processor(Protocol):
    queue_name: str

    def process(self, item: Claimed) -> None:
        """Do the work and mark the item complete in the same transaction as its effects."""


class Runner:
    """`on_dead` is told about every item that goes to the dead-letter state here (the app
    passes one that mails the administrator), unless the processor already told them."""

    def __init__(self, queue: WorkQueue, processor: Processor, poll_seconds: float,
                 on_dead: DeadLetterHook | None = None) -> None:
        self.queue = queue
        self.processor = processor
        self.poll_seconds = poll_seconds
        self.on_dead = on_dead
        self.wakeup = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(
            target=self._loop, name=f"runner-{processor.queue_name}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.wakeup.set()
        self.thread.join(timeout)

    def run_once(self) -> bool:
        """Process at most one item; True if one was claimed."""
        item = self.queue.claim(self.processor.queue_name)
        if item is None:
            return False
        try:
            self.processor.process(item)
        except TemporaryError as exc:
            state = self.queue.fail(item, str(exc), on_dead=self.on_dead)
            log.warning("%s item %s: temporary failure (%s), now %s",
                        item.queue, item.id, exc, state)
        except PermanentError as exc:
            self.queue.fail(item, str(exc), permanent=True,
                            on_dead=None if exc.told else self.on_dead)
            log.error("%s item %s: permanent failure: %s", item.queue, item.id, exc)
        except Exception as exc:  # a bug must cost one item, never the daemon
            detail = "".join(traceback.format_exception(exc))
            state = self.queue.fail(item, f"{type(exc).__name__}: {exc}\n{detail}",
                                    on_dead=self.on_dead)
            log.error("%s item %s failed (%s):\n%s", item.queue, item.id, state, detail)
            if state == State.DEAD:
                log.error("%s item %s moved to the dead-letter state", item.queue, item.id)
        return True

    def drain(self, limit: int = 10_000) -> int:
        """Process everything due now (tests, CLI)."""
        n = 0
        while n < limit and self.run_once():
            n += 1
        return n

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                busy = self.run_once()
            except Exception:
                log.exception("runner %s: store unavailable, retrying", self.processor.queue_name)
                busy = False
            if not busy:
                self.wakeup.wait(self.poll_seconds)
                self.wakeup.clear()
