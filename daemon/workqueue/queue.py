"""Durable work items with explicit states: queued -> running -> done | dead.

Claiming is a conditional UPDATE (state still 'queued'), so two daemons on one PostgreSQL
can never both win the same item; SKIP LOCKED keeps them from waiting on each other.
A crash leaves an item 'running' with a lease; it is reclaimed when the lease runs out, or
at once by the same instance on restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from daemon.clock import Clock
from daemon.config import QueueConfig
from daemon.store.db import Store, rowcount
from daemon.store.models import WorkItem

log = logging.getLogger(__name__)


class State(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"


class Queues(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    EXECUTION = "execution"
    REORG = "reorg"  # one case a reorganisation's commit moved (daemon.cases.reorgrunner)


class TemporaryError(Exception):
    """Worth retrying later (e.g. SMTP 4xx, connection refused)."""


class PermanentError(Exception):
    """Retrying cannot help (e.g. SMTP 5xx): goes straight to the dead-letter state.

    `told`: the processor has already told the administrator about this item (with the
    retry command), so the generic dead-letter alert would be a second mail.
    """

    def __init__(self, message: str, *, told: bool = False) -> None:
        super().__init__(message)
        self.told = told


@dataclass(frozen=True)
class Claimed:
    id: int
    queue: str
    ref_id: int
    attempts: int


@dataclass(frozen=True)
class DeadLetter:
    """An item that has just moved to the dead-letter state, and why."""

    id: int
    queue: str
    ref_id: int
    attempts: int
    error: str
    permanent: bool


# Called in the transaction that marks the item dead (so whatever it queues, e.g. the mail
# to the administrator, exists iff the item is dead). The queue knows nothing of mail: the
# app passes this in.
DeadLetterHook = Callable[[Session, DeadLetter], None]


def enqueue(session: Session, queue: str, ref_id: int, now: datetime, max_attempts: int,
            not_before: datetime | None = None) -> None:
    """Add an item in the caller's transaction, so it exists iff its payload does.

    `not_before` holds the item back until then (e.g. a destination's next opening time).
    """
    session.add(
        WorkItem(
            queue=queue,
            ref_id=ref_id,
            state=State.QUEUED,
            attempts=0,
            max_attempts=max_attempts,
            next_attempt_at=max(now, not_before) if not_before else now,
            created_at=now,
            updated_at=now,
        )
    )


class WorkQueue:
    def __init__(self, store: Store, clock: Clock, cfg: QueueConfig, owner: str) -> None:
        self.store = store
        self.clock = clock
        self.cfg = cfg
        self.owner = owner

    def enqueue(self, session: Session, queue: str, ref_id: int) -> None:
        enqueue(session, queue, ref_id, self.clock.now(), self.cfg.max_attempts)

    def claim(self, queue: str) -> Claimed | None:
        """Take the oldest due item, or None. Commits the claim before returning."""
        for _ in range(5):
            now = self.clock.now()
            with self.store.transaction() as s:
                candidate = s.execute(
                    select(WorkItem.id, WorkItem.ref_id, WorkItem.attempts)
                    .where(
                        WorkItem.queue == queue,
                        WorkItem.state == State.QUEUED,
                        WorkItem.next_attempt_at <= now,
                    )
                    .order_by(WorkItem.next_attempt_at, WorkItem.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).first()
                if candidate is None:
                    return None
                won = rowcount(s.execute(
                    update(WorkItem)
                    .where(WorkItem.id == candidate.id, WorkItem.state == State.QUEUED)
                    .values(
                        state=State.RUNNING,
                        attempts=WorkItem.attempts + 1,
                        claimed_by=self.owner,
                        lease_until=now + timedelta(seconds=self.cfg.lease_seconds),
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                ))
                if won == 1:
                    return Claimed(candidate.id, queue, candidate.ref_id, candidate.attempts + 1)
        return None

    def complete(self, session: Session, item: Claimed) -> None:
        """Mark done inside the transaction that holds the item's effects."""
        session.execute(
            update(WorkItem)
            .where(WorkItem.id == item.id)
            .values(state=State.DONE, updated_at=self.clock.now(), lease_until=None,
                    last_error=None)
        )

    def extend(self, item: Claimed) -> bool:
        """Renew a long job's lease (a large archive build), so nobody reclaims it meanwhile.

        False if the item is no longer ours to run.
        """
        now = self.clock.now()
        with self.store.transaction() as s:
            return rowcount(s.execute(
                update(WorkItem)
                .where(WorkItem.id == item.id, WorkItem.state == State.RUNNING,
                       WorkItem.claimed_by == self.owner)
                .values(lease_until=now + timedelta(seconds=self.cfg.lease_seconds),
                        updated_at=now)
                .execution_options(synchronize_session=False))) == 1

    def defer(self, session: Session, item: Claimed, until: datetime) -> None:
        """Put a claimed item back untouched until `until`: waiting is not a failed attempt."""
        session.execute(
            update(WorkItem)
            .where(WorkItem.id == item.id)
            .values(state=State.QUEUED, next_attempt_at=until, lease_until=None,
                    attempts=WorkItem.attempts - 1, updated_at=self.clock.now())
        )

    def max_attempts(self, session: Session, item: Claimed) -> int:
        row = session.get(WorkItem, item.id)
        return row.max_attempts if row is not None else self.cfg.max_attempts

    def fail(self, item: Claimed, error: str, permanent: bool = False,
             on_dead: DeadLetterHook | None = None) -> str:
        """Record the error; retry with back-off or move to the dead-letter state.

        `on_dead` runs when the item dies, inside a savepoint of the same transaction: if it
        fails, the item is dead all the same and the failure is logged.
        """
        now = self.clock.now()
        with self.store.transaction() as s:
            row = s.get(WorkItem, item.id)
            if row is None:
                return State.DEAD
            dead = permanent or row.attempts >= row.max_attempts
            delay = min(
                self.cfg.backoff_base_seconds * (2 ** max(row.attempts - 1, 0)),
                self.cfg.backoff_max_seconds,
            )
            row.state = State.DEAD if dead else State.QUEUED
            row.next_attempt_at = now if dead else now + timedelta(seconds=delay)
            row.last_error = error[:4000]
            row.lease_until = None
            row.updated_at = now
            if dead and on_dead is not None:
                self._tell_dead(s, DeadLetter(item.id, item.queue, item.ref_id, row.attempts,
                                              error[:4000], permanent), on_dead)
            return row.state

    def reclaim(self, at_start: bool = False, on_dead: DeadLetterHook | None = None) -> int:
        """Requeue items whose runner died: lease expired, or ours from before a restart.

        An item whose every attempt was interrupted (one that stops the process each time it
        runs) goes to the dead-letter state instead, with `on_dead` told, so a daemon that
        restarts on failure does not run it forever.
        """
        now = self.clock.now()
        stale = WorkItem.lease_until < now
        if at_start:
            stale = stale | (WorkItem.claimed_by == self.owner)
        with self.store.transaction() as s:
            spent = s.scalars(select(WorkItem).where(
                WorkItem.state == State.RUNNING, stale,
                WorkItem.attempts >= WorkItem.max_attempts).with_for_update()).all()
            for row in spent:
                error = (f"interrupted on each of its {row.attempts} attempt(s): the process "
                         "stopped while running it")
                row.state, row.lease_until, row.updated_at = State.DEAD, None, now
                row.last_error = error
                log.error("%s item %s moved to the dead-letter state: %s", row.queue, row.id,
                          error)
                if on_dead is not None:
                    self._tell_dead(s, DeadLetter(row.id, row.queue, row.ref_id, row.attempts,
                                                  error, False), on_dead)
            s.flush()
            result = s.execute(
                update(WorkItem)
                .where(WorkItem.state == State.RUNNING, stale)
                .values(state=State.QUEUED, next_attempt_at=now, lease_until=None,
                        updated_at=now, last_error="reclaimed after an interrupted run")
                .execution_options(synchronize_session=False)
            )
            return rowcount(result)

    @staticmethod
    def _tell_dead(s: Session, letter: DeadLetter, on_dead: DeadLetterHook) -> None:
        """Run the hook in a savepoint: if it fails, the item is dead all the same."""
        try:
            with s.begin_nested():
                on_dead(s, letter)
        except Exception:
            log.exception("%s item %s is dead; telling the administrator failed",
                          letter.queue, letter.id)

    def retry(self, item_id: int) -> bool:
        """Put a dead-letter item back in the queue (operator action)."""
        now = self.clock.now()
        with self.store.transaction() as s:
            result = s.execute(
                update(WorkItem)
                .where(WorkItem.id == item_id, WorkItem.state == State.DEAD)
                .values(state=State.QUEUED, next_attempt_at=now, attempts=0, updated_at=now)
            )
            return rowcount(result) > 0


@dataclass(frozen=True)
class QueueStats:
    queue: str
    counts: dict[str, int]
    oldest_waiting: datetime | None


def queue_stats(store: Store) -> list[QueueStats]:
    with store.transaction() as s:
        rows = s.execute(
            select(WorkItem.queue, WorkItem.state, func.count()).group_by(
                WorkItem.queue, WorkItem.state
            )
        ).all()
        oldest = dict(
            s.execute(
                select(WorkItem.queue, func.min(WorkItem.created_at))
                .where(WorkItem.state.in_([State.QUEUED, State.RUNNING]))
                .group_by(WorkItem.queue)
            ).all()
        )
    counts: dict[str, dict[str, int]] = {q.value: {st.value: 0 for st in State} for q in Queues}
    for queue, state, n in rows:
        counts.setdefault(queue, {st.value: 0 for st in State})[state] = n
    return [QueueStats(q, c, oldest.get(q)) for q, c in sorted(counts.items())]
