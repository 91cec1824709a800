"""Timer benchmark: the CPU time of one timer pass over N waiting cases.

Builds the daemon in this process (sample organisation, embedded SQLite by default, or a
scratch database on the PostgreSQL server named by --database-url), writes N waiting cases
straight into the store (one pending step each, asked of Sato), and times:

  fill       the first pass after an upgrade: every pending step gets its due time once
  idle       one pass when nothing is due
  1 % due    one pass when 1 % of the steps are due for a reminder (mails composed)

CPU time is this process's (time.process_time); wall time is shown beside it, since a
PostgreSQL server works in its own process.

    .venv/bin/python bench/timers.py --cases 2000 20000
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import delete, func, select, update  # noqa: E402

from daemon.app import App  # noqa: E402
from daemon.cases.duetimes import SETTINGS_KEY  # noqa: E402
from daemon.cases.states import CaseState, StepState  # noqa: E402
from daemon.clock import FrozenClock  # noqa: E402
from daemon.config import Config  # noqa: E402
from daemon.store.db import Store  # noqa: E402
from daemon.store.models import Case, CaseStep, Counter  # noqa: E402

NOW = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)  # a Thursday
DUE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # Monday: the two-day reminder came Wednesday
POST = {"unit": "eng", "position": "chief"}  # Sato's post in samples/organisation.toml


def seed_waiting(store: Store, asked: Iterable[datetime], batch: int = 1000) -> int:
    """One waiting travel case per `asked` time (Tanaka asks, Sato approves), written in
    bulk; the steps carry no due time, as rows from before due times existed."""
    with store.transaction() as s:  # numbers go on after the cases already there
        n = first = s.scalar(select(func.count(Case.id))) or 0
    pending: list[datetime] = []

    def flush() -> None:
        nonlocal n
        with store.transaction() as s:
            cases = [Case(number=f"B-{n + i:08d}", case_type="travel", title="Trip",
                          requester_id="tanaka", state=CaseState.IN_REVIEW, fields={},
                          created_at=at, updated_at=at, thread_id=f"<b{n + i}@bench>",
                          route={"phase": 0, "step": 0, "sub": 0})
                     for i, at in enumerate(pending)]
            s.add_all(cases)
            s.flush()
            s.add_all([CaseStep(case_id=c.id, seq=1, resolver="line", approver_id="sato",
                                state=StepState.PENDING, asked_at=at, slot=1, mode="single",
                                phase="line", step_name="manager", kind="approver",
                                asked_post=POST)
                       for c, at in zip(cases, pending, strict=True)])
        n += len(pending)
        pending.clear()

    for at in asked:
        pending.append(at)
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    return n - first


def cpu(fn: object) -> tuple[float, float, int]:
    assert callable(fn)
    c0, w0 = time.process_time(), time.perf_counter()
    result = fn()
    return time.process_time() - c0, time.perf_counter() - w0, int(result or 0)


def run(n: int, db_url: str, tmp: Path) -> None:
    cfg = Config.model_validate({
        "instance": {"name": "bench", "log_level": "WARNING"},
        "paths": {"spool": f"{tmp}/spool", "rules": str(ROOT / "rules"),
                  "templates": str(ROOT / "mailtemplates")},
        "database": {"url": db_url or f"sqlite:///{tmp}/ringi.db"},
        "relay": {"host": "", "port": 25},
        "directory": {"file": str(ROOT / "samples" / "organisation.toml")},
    })
    app = App(cfg, clock=FrozenClock(NOW))
    app.prepare()
    try:
        t0 = time.perf_counter()
        due = max(1, n // 100)
        seed_waiting(app.store, [NOW] * n)
        seeded = time.perf_counter() - t0
        fill = cpu(app.timers.prepare)
        idle = cpu(app.timers.run_once)
        with app.store.transaction() as s:  # now 1 %: their due time is recomputed at start
            s.execute(update(CaseStep).where(CaseStep.id <= due).values(asked_at=DUE))
            s.execute(delete(Counter).where(Counter.name == SETTINGS_KEY))
        app.timers._prepared = False
        app.timers.prepare()
        some = cpu(app.timers.run_once)
        assert some[2] == due, f"expected {due} reminders, the pass took {some[2]} actions"
        backend = "PostgreSQL" if db_url else "SQLite"
        print(f"{backend:10} {n:>7} waiting (seeded in {seeded:.1f} s)")
        for name, (c, w, _acts) in (("fill", fill), ("idle", idle), ("1 % due", some)):
            print(f"  {name:8} CPU {c * 1000:9.1f} ms   wall {w * 1000:9.1f} ms")
    finally:
        app.stop()
        app.store.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--database-url", default="",
                    help="PostgreSQL server to use (a scratch database is created on it)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from bench.ingest import drop_database, scratch_database

    for n in args.cases:
        with tempfile.TemporaryDirectory() as tmp:
            url = scratch_database(args.database_url) if args.database_url else ""
            try:
                run(n, url, Path(tmp))
            finally:
                if url:
                    drop_database(args.database_url, url)


if __name__ == "__main__":
    main()
