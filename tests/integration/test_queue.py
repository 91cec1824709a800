"""The durable work queue and case numbering, on every configured database backend."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from daemon.cases.numbering import next_number
from daemon.clock import FrozenClock
from daemon.config import QueueConfig
from daemon.store.db import Store
from daemon.store.models import WorkItem
from daemon.workqueue.queue import Claimed, State, WorkQueue, enqueue
from daemon.workqueue.runner import Runner


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    st = Store(db_url)
    st.migrate()
    yield st
    st.dispose()


CFG = QueueConfig(max_attempts=3, backoff_base_seconds=60, backoff_max_seconds=300,
                  lease_seconds=120)


def add_items(q: WorkQueue, n: int, queue: str = "inbound") -> None:
    with q.store.transaction() as s:
        for i in range(n):
            q.enqueue(s, queue, i)


def item_state(store: Store, item_id: int) -> WorkItem:
    with store.transaction() as s:
        row = s.get(WorkItem, item_id)
        assert row is not None
        return row


def test_claim_complete_in_order(store: Store) -> None:
    clock = FrozenClock()
    q = WorkQueue(store, clock, CFG, "a")
    add_items(q, 3)
    first = q.claim("inbound")
    assert first is not None and first.ref_id == 0 and first.attempts == 1
    assert q.claim("outbound") is None
    with store.transaction() as s:
        q.complete(s, first)
    assert item_state(store, first.id).state == State.DONE
    assert [c.ref_id for c in iter(lambda: q.claim("inbound"), None)] == [1, 2]


def test_failures_back_off_then_dead_letter_then_retry(store: Store) -> None:
    clock = FrozenClock()
    q = WorkQueue(store, clock, CFG, "a")
    add_items(q, 1)
    item = q.claim("inbound")
    assert item is not None
    assert q.fail(item, "relay said 451") == State.QUEUED
    assert q.claim("inbound") is None  # not due yet: 60 s back-off
    clock.advance(timedelta(seconds=59))
    assert q.claim("inbound") is None
    clock.advance(timedelta(seconds=1))
    item = q.claim("inbound")
    assert item is not None and item.attempts == 2
    assert q.fail(item, "again") == State.QUEUED
    clock.advance(timedelta(seconds=119))
    assert q.claim("inbound") is None  # doubled: 120 s
    clock.advance(timedelta(seconds=1))
    item = q.claim("inbound")
    assert item is not None and item.attempts == 3
    assert q.fail(item, "third time") == State.DEAD
    row = item_state(store, item.id)
    assert row.state == State.DEAD and row.last_error == "third time"
    clock.advance(timedelta(days=1))
    assert q.claim("inbound") is None
    assert q.retry(item.id)
    assert q.claim("inbound") is not None


def test_permanent_failure_is_dead_at_once(store: Store) -> None:
    q = WorkQueue(store, FrozenClock(), CFG, "a")
    add_items(q, 1)
    item = q.claim("inbound")
    assert item is not None
    assert q.fail(item, "550 no such user", permanent=True) == State.DEAD


def test_reclaim_after_crash(store: Store) -> None:
    clock = FrozenClock()
    mine = WorkQueue(store, clock, CFG, "a")
    other = WorkQueue(store, clock, CFG, "b")
    add_items(mine, 2)
    assert mine.claim("inbound") is not None
    assert other.claim("inbound") is not None
    # Another live instance's lease is respected ...
    assert other.reclaim() == 0
    # ... but a restarted instance takes back what it held when it died,
    assert mine.reclaim(at_start=True) == 1
    assert mine.claim("inbound") is not None
    # and any lease that ran out is taken back by whoever looks.
    clock.advance(timedelta(seconds=121))
    assert mine.reclaim() == 2


@pytest.mark.parametrize("workers", [4])
def test_concurrent_claims_never_share_an_item(db_url: str, store: Store, workers: int) -> None:
    add_items(WorkQueue(store, FrozenClock(), CFG, "setup"), 120)
    taken: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        own = Store(db_url)  # separate engine, like a separate daemon instance
        q = WorkQueue(own, FrozenClock(), CFG, name)
        try:
            while (item := q.claim("inbound")) is not None:
                with lock:
                    taken.append(item.id)
                with own.transaction() as s:
                    q.complete(s, item)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    dupes = [k for k, v in Counter(taken).items() if v > 1]
    assert dupes == [] and len(taken) == 120
    with store.transaction() as s:
        states = set(s.scalars(select(WorkItem.state)))
    assert states == {State.DONE}


def test_case_numbers_unique_under_concurrency(db_url: str, store: Store) -> None:
    clock = FrozenClock()
    numbers: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        own = Store(db_url)
        try:
            for _ in range(15):
                with own.transaction() as s:
                    n = next_number(s, "R-{year}-{seq:06d}", clock.now())
                with lock:
                    numbers.append(n)
        finally:
            own.dispose()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(numbers) == [f"R-2026-{i:06d}" for i in range(1, 61)]
    with store.transaction() as s:  # a new year starts a new sequence
        assert next_number(s, "R-{year}-{seq:06d}", clock.now() + timedelta(days=365)) \
            == "R-2027-000001"


class Flaky:
    queue_name = "inbound"

    def __init__(self, store: Store, q: WorkQueue) -> None:
        self.store, self.q, self.seen = store, q, []  # type: ignore[var-annotated]

    def process(self, item: Claimed) -> None:
        self.seen.append(item.ref_id)
        if item.ref_id == 0:
            raise ValueError("malformed input")
        with self.store.transaction() as s:
            self.q.complete(s, item)


def test_runner_survives_a_failing_item(store: Store) -> None:
    clock = FrozenClock()
    q = WorkQueue(store, clock, QueueConfig(max_attempts=2, backoff_base_seconds=10), "a")
    add_items(q, 3)
    proc = Flaky(store, q)
    runner = Runner(q, proc, 0.01)
    assert runner.drain() == 3  # the bad item failed, the others were done
    clock.advance(timedelta(seconds=10))
    assert runner.drain() == 1  # second and last attempt
    with store.transaction() as s:
        rows = {r.ref_id: r for r in s.scalars(select(WorkItem))}
    assert rows[0].state == State.DEAD and "malformed input" in (rows[0].last_error or "")
    assert rows[1].state == rows[2].state == State.DONE
    assert proc.seen == [0, 1, 2, 0]


def test_not_before_and_defer_hold_an_item_without_costing_attempts(store: Store) -> None:
    clock = FrozenClock()
    q = WorkQueue(store, clock, CFG, "a")
    with store.transaction() as s:
        enqueue(s, "execution", 7, clock.now(), 3, not_before=clock.now() + timedelta(hours=1))
    assert q.claim("execution") is None
    clock.advance(timedelta(hours=1))
    item = q.claim("execution")
    assert item is not None and item.attempts == 1
    with store.transaction() as s:
        q.defer(s, item, clock.now() + timedelta(days=2))
    row = item_state(store, item.id)
    assert (row.state, row.attempts, row.lease_until) == (State.QUEUED, 0, None)
    clock.advance(timedelta(days=2) - timedelta(seconds=1))
    assert q.claim("execution") is None
    clock.advance(timedelta(seconds=1))
    again = q.claim("execution")
    assert again is not None and again.attempts == 1
