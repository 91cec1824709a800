"""Timer passes read only what is due: each waiting step carries its next due time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, event, select, update

from bench.timers import seed_waiting
from daemon.cases.duetimes import SETTINGS_KEY
from daemon.store.models import CaseStep, Counter
from tests.integration.orgworld import case_steps, running_world
from tests.integration.test_outcomes import (
    SATO,
    SUZUKI,
    TANAKA,
    World,
    number_of,
    travel,
)
from tests.support import CapturingRelay

FRI = datetime(2026, 11, 6, 9, 0, tzinfo=UTC)
TUE = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)  # two business days after Friday
WED = datetime(2026, 11, 11, 9, 0, tzinfo=UTC)
NEXT_FRI = datetime(2026, 11, 13, 9, 0, tzinfo=UTC)  # five business days


def file_on_friday(w: World) -> str:
    """Tanaka's ¥54,500 trip, asked of Sato on Friday: its reminder is due on Tuesday."""
    w.clock.set(FRI)
    w.send(TANAKA, "Trip", travel("54,500"))
    number = number_of(w.one(TANAKA))
    w.one(SATO)
    return number


def statements(w: World) -> tuple[int, int]:
    """SQL statements one timer pass issues, and the actions it took (the runners polling
    the queue in their own threads are not counted)."""
    seen: list[str] = []
    me = threading.get_ident()

    def count(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if threading.get_ident() == me:
            seen.append(sql)

    event.listen(w.app.store.engine, "before_cursor_execute", count)
    try:
        done = w.app.timers.run_once()
    finally:
        event.remove(w.app.store.engine, "before_cursor_execute", count)
    return len(seen), done


def test_idle_pass_is_bounded_whatever_the_number_waiting(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    with running_world(tmp_path, db_url, relay) as w:
        now = w.clock.now()
        seed_waiting(w.app.store, [now] * 20)  # rows without due times, as after an upgrade
        with w.app.store.transaction() as s:
            s.execute(delete(Counter).where(Counter.name == SETTINGS_KEY))
        w.app.timers._prepared = False  # the next start fills them in
        w.app.timers.prepare()
        w.app.timers.run_once()  # rule books and the like are read once, then kept
        few, done = statements(w)
        assert done == 0
        seed_waiting(w.app.store, [now] * 400)
        with w.app.store.transaction() as s:
            s.execute(delete(Counter).where(Counter.name == SETTINGS_KEY))
        w.app.timers._prepared = False
        w.app.timers.prepare()
        with w.app.store.transaction() as s:
            assert s.scalar(select(CaseStep.id).where(CaseStep.next_check_at.is_(None))) is None
        many, done = statements(w)
        assert done == 0
        assert many == few <= 20, (few, many)
        # Three of them come due: the pass acts on those three only.
        with w.app.store.transaction() as s:
            ids = s.scalars(select(CaseStep.id).order_by(CaseStep.id).limit(3)).all()
            s.execute(update(CaseStep).where(CaseStep.id.in_(ids))
                      .values(next_check_at=now, asked_at=datetime(2026, 10, 28, 9, 0,
                                                                   tzinfo=UTC)))
        assert w.app.timers.run_once() == 3
        assert len(w.new(SATO, 3)) == 3
        w.app.timers.run_once()  # the reminders' history entries are anchored
        assert statements(w) == (few, 0)


def test_reminder_and_escalation_times_survive_a_restart(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    with running_world(tmp_path, db_url, relay) as w:
        number = file_on_friday(w)
        assert [st.next_check_at for st in case_steps(w, number)] == [TUE]  # the reminder
    with running_world(tmp_path, db_url, relay) as w:  # same database, a new process
        w.seen = {who: len(relay.to(who)) for who in (SATO, SUZUKI, TANAKA)}
        with w.app.store.transaction() as s:
            fingerprint = s.scalar(select(Counter.value).where(Counter.name == SETTINGS_KEY))
        assert fingerprint is not None
        assert [st.next_check_at for st in case_steps(w, number)] == [TUE]
        w.clock.set(datetime(2026, 11, 9, 18, 0, tzinfo=UTC))  # Monday evening: not yet
        assert w.app.timers.run_once() == 0
        w.clock.set(TUE)
        assert w.app.timers.run_once() == 1
        assert "【催促】" in w.one(SATO).body
        assert [st.next_check_at for st in case_steps(w, number)] == [NEXT_FRI]  # escalation
        assert w.app.timers.run_once() == 0
        w.clock.set(NEXT_FRI)
        assert w.app.timers.run_once() == 1
        escalated = w.one(SUZUKI)
        first, second = case_steps(w, number)
        assert first.next_check_at is None  # reminded and escalated: nothing left to do
        assert second.kind == "escalation" and second.next_check_at == datetime(
            2026, 11, 17, 9, 0, tzinfo=UTC)  # its own reminder, two business days on
        w.reply(escalated, SUZUKI, "承認")
        assert "承認されました" in w.one(TANAKA).subject
        assert [st.next_check_at for st in case_steps(w, number)] == [None, None]  # decided


def test_changed_settings_recompute_due_times_at_start(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    with running_world(tmp_path, db_url, relay) as w:
        number = file_on_friday(w)
    with running_world(tmp_path, db_url, relay, workflow={"reminder_after_days": 3}) as w:
        w.seen = {who: len(relay.to(who)) for who in (SATO, TANAKA)}
        assert [st.next_check_at for st in case_steps(w, number)] == [WED]
        w.clock.set(TUE)
        assert w.app.timers.run_once() == 0  # the old two days no longer apply
        w.clock.set(WED)
        assert w.app.timers.run_once() == 1
        assert "【催促】" in w.one(SATO).body
