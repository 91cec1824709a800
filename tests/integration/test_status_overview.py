"""`ringi status` tells an operator whether ringi runs and what waits for whom: the daemons
on this store (running, stopped, silent), cases by state, the oldest waiting approval and
its approver, held cases and dead letters. A real daemon, real mail, the real CLI."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from daemon.app import App
from daemon.cases.states import CaseState
from daemon.store.instance_models import DaemonInstance
from daemon.store.models import Case, WorkItem
from daemon.workqueue.queue import State
from tests.integration.test_outcomes import SATO, TANAKA, travel
from tests.support import CapturingRelay, free_port, make_config, ringi, send, write_config


def test_status_shows_daemons_cases_and_what_waits(tmp_path: Path, db_url: str,
                                                   relay: CapturingRelay) -> None:
    cfg = make_config(tmp_path, db_url, relay.port, free_port())
    cfg_file = write_config(cfg, tmp_path)
    app = App(cfg)  # the system clock, as the CLI's
    app.prepare()
    app.start()
    try:
        send(cfg.smtp.port, TANAKA, "Osaka visit", travel("24,500"))
        relay.wait_for(SATO, 1)
        out = ringi(cfg_file, "status")
        assert out.exit_code == 0, out.output
        assert "daemons   1 running" in out.output
        assert "test-instance on " in out.output and ": running, heartbeat" in out.output
        assert "in_review=1" in out.output
        assert "oldest waiting approval: R-" in out.output
        assert "waiting for Hanako Sato (sato)" in out.output
        with app.store.transaction() as s:  # a case nobody can approve, a dead letter
            case = s.scalars(select(Case)).one()
            case.state = CaseState.HELD
            item = s.scalars(select(WorkItem)).first()
            assert item is not None
            item.state = State.DEAD
        out = ringi(cfg_file, "status").output
        assert f"held      {case.number} (nobody can approve its step" in out
        assert "dead letters: 1" in out
    finally:
        app.stop()
    out = ringi(cfg_file, "status").output
    assert "daemons   0 running" in out and ": stopped " in out
    with app.store.transaction() as s:  # a daemon killed long ago: its heartbeat went old
        row = s.scalars(select(DaemonInstance)).one()
        row.stopped_at = None
        row.seen_at -= timedelta(minutes=30)
    out = ringi(cfg_file, "status").output
    assert "daemons   0 running" in out and "NOT ANSWERING: last heartbeat" in out
    app.store.dispose()
