"""A reorganisation's commit killed with SIGKILL at several moments (SPEC 10, issue 12).

Some 200 cases wait: a handful filed over SMTP, the rest opened through the application's own
request path in-process (Workflow.open_case, as the intake does). The plan hands Engineering's
head from Suzuki to Sato (every design release moves), moves Takahashi from Sales to
Procurement (Smith's trips move up to Brown) and retires Ito (Kato's trips are held).
`ringi reorg commit --hold-failing` runs as a real process and is killed; after every kill the
database holds either the old state, untouched, with the change still in progress (which
another instance on the same database reports), or the new one, complete: every moving ask
withdrawn and one reroute queued per case. A daemon running those reroutes is killed too:
each case is then either untouched since the commit or fully rerouted, and a restarted
daemon finishes.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import OperationalError

from daemon.app import App
from daemon.cases.states import CaseState, StepState
from daemon.cases.workflow import NewRequest
from daemon.directory.export import snapshot
from daemon.directory.lookup import member
from daemon.parsing.request import parse_form_text, validate_fields
from daemon.store.models import (
    Case,
    CaseEvent,
    CaseStep,
    DirectoryImport,
    OutboundMail,
    ReplyToken,
    WorkItem,
)
from daemon.store.reorg_models import Reorganisation, ReorgCaseBackup
from tests.integration.orgworld import RELEASE
from tests.integration.test_outcomes import (
    BROWN,
    KATO,
    SATO,
    SMITH,
    SUZUKI,
    TAKAHASHI,
    TANAKA,
    World,
    number_of,
    start_world,
    travel,
)
from tests.integration.test_reorganisation import NEW_ORG, file_three, plan_file
from tests.support import ROOT, Captured, CapturingRelay, ringi, wait_until, write_config

PER_KIND = 70  # design releases, Smith's trips, Kato's trips: 210 waiting cases
TAKAHASHI_POST = 'unit = "sales"\nposition = "chief"'
PLAN = NEW_ORG.replace(TAKAHASHI_POST, 'unit = "procurement"\nposition = "chief"')
FORMS = {"tanaka": RELEASE, "smith": travel("20,000"), "kato": travel("12,000")}


def open_many(w: World) -> None:
    """Most cases through the request path in-process: over SMTP 200 would take minutes."""
    for who in ("tanaka", "smith", "kato"):
        text_ = FORMS[who]
        with w.app.store.transaction() as s:
            requester = member(s, who)
            assert requester is not None
            raw = parse_form_text(text_)
            ct = w.app.workflow.types.get(raw.type_key or "")
            assert ct is not None
            values, problems = validate_fields(ct, raw)
            assert not problems
            for i in range(PER_KIND - 1):
                w.app.workflow.open_case(s, NewRequest(
                    requester=requester, case_type=ct, title=f"{who} {i}", fields=values,
                    channel="test"))


def state_of(app: App) -> dict[str, Any]:
    """Everything a commit changes: cases, asks, tokens, mail, the directory, the change."""
    with app.store.transaction() as s:
        cases = {c.number: (c.state, json.dumps(c.route, sort_keys=True))
                 for c in s.scalars(select(Case))}
        pending = {(st.case_id, st.id, st.approver_id) for st in s.scalars(
            select(CaseStep).where(CaseStep.state == StepState.PENDING))}
        asked: dict[str, set[str]] = {}
        for number, approver in s.execute(
                select(Case.number, CaseStep.approver_id).join(CaseStep, CaseStep.case_id ==
                                                               Case.id)
                .where(CaseStep.state == StepState.PENDING)):
            asked.setdefault(number, set()).add(approver)
        reorg = s.scalar(select(Reorganisation).order_by(Reorganisation.id.desc()))
        assert reorg is not None
        return {
            "reorg": reorg.state, "cases": cases, "pending": pending, "asked": asked,
            "superseded": s.scalar(select(func.count(CaseStep.id)).where(
                CaseStep.state == StepState.SUPERSEDED)),
            "live_tokens": s.scalar(select(func.count(ReplyToken.id)).where(
                ReplyToken.revoked_at.is_(None))),
            "mail": s.scalar(select(func.count(OutboundMail.id))),
            "imports": s.scalar(select(func.count(DirectoryImport.id))),
            "events": s.scalar(select(func.count(CaseEvent.id))),
            "work": s.scalar(select(func.count(WorkItem.id))),
            "backups": s.scalar(select(func.count(ReorgCaseBackup.id))),
            "directory": json.dumps(snapshot(s), sort_keys=True),
        }


class Writer:
    """Whether some process holds the database's write lock (SQLite) or the audit trail's
    head row (PostgreSQL: the commit locks it first) right now, asked from outside."""

    def __init__(self, db_url: str) -> None:
        self.url = db_url
        self.engine = None if db_url.startswith("sqlite") else create_engine(db_url)

    def busy(self) -> bool:
        if self.engine is None:
            conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=0,
                                   isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
                return False
            except sqlite3.OperationalError:
                return True
            finally:
                conn.close()
        try:
            with self.engine.begin() as pg:
                pg.execute(text("SELECT seq FROM audit_head FOR UPDATE NOWAIT"))
            return False
        except OperationalError:
            return True

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


def command(cfg_file: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "daemon", "--config", str(cfg_file), *args]


def commit_process(cfg_file: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command(cfg_file, "reorg", "commit", "--hold-failing"), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def assert_old_or_new(w: World, cfg_file: Path, before: dict[str, Any],
                      plan: dict[str, Any]) -> str:
    """Either nothing changed and the change is still in progress, or all of it is done."""
    now = state_of(w.app)
    if now["reorg"] == "in_progress":
        assert now == before  # no case, ask, token, mail or directory row changed
        status = ringi(cfg_file, "status")  # a restarted daemon, another instance: told
        assert "REORGANISATION 1 IN PROGRESS" in status.output, status.output
        return "old"
    assert now["reorg"] == "committed", now["reorg"]
    # The switch is whole: every moving or failing ask withdrawn, its token dead, one queued
    # reroute per case; the new asks and mails come from those items (rerouted_or_not).
    for number, c in {c["case"]: c for c in plan["cases"]}.items():
        if c["outcome"] in ("moves", "fails"):
            assert number not in now["asked"], (number, c)
            assert json.loads(now["cases"][number][1])["rerouting"] == 1, (number, c)
        else:
            assert now["asked"].get(number) == before["asked"].get(number), (number, c)
    touched = plan["counts"]["moves"] + plan["counts"]["fails"]
    assert now["superseded"] - before["superseded"] == touched
    assert before["live_tokens"] - now["live_tokens"] == touched
    told = now["mail"] - before["mail"]
    assert now["backups"] == touched and told == 1  # the administrator's summary, no other
    assert now["work"] - before["work"] == touched + told
    assert now["imports"] == before["imports"] + 1 and now["directory"] != before["directory"]
    status = ringi(cfg_file, "status").output
    assert "IN PROGRESS" not in status and f"{touched} case(s) still being rerouted" in status
    return "new"


def rerouted(app: App) -> int:
    """How many cases are rerouted (one query: also while a daemon is at work)."""
    with app.store.transaction() as s:
        return s.scalar(select(func.count(ReorgCaseBackup.id)).where(
            ReorgCaseBackup.state == "done")) or 0


def rerouted_or_not(app: App, plan: dict[str, Any]) -> int:
    """Each moved case is either untouched since the commit or fully rerouted; returns how
    many are rerouted. (Read while nothing else writes.)"""
    now = state_of(app)
    with app.store.transaction() as s:
        done = dict(s.execute(select(Case.number, ReorgCaseBackup.state).join(
            Case, Case.id == ReorgCaseBackup.case_id)).all())
        events = {n: k for n, k in s.execute(select(Case.number, func.count(CaseEvent.id))
                  .join(CaseEvent, CaseEvent.case_id == Case.id).where(
                      CaseEvent.kind.in_(("reassigned", "withdrawn"))).group_by(Case.number))}
    for c in plan["cases"]:
        number, outcome = c["case"], c["outcome"]
        if outcome not in ("moves", "fails"):
            continue
        state, route = now["cases"][number][0], json.loads(now["cases"][number][1]) or {}
        if done[number] == "pending":
            assert "rerouting" in route and number not in now["asked"], (number, c)
            assert events.get(number, 0) == 0 and state == CaseState.IN_REVIEW
            continue
        assert done[number] == "done" and "rerouting" not in route, (number, done[number])
        assert events.get(number) == 1, number
        if outcome == "moves":
            assert now["asked"].get(number) == set(c["new"]), (number, c)
        else:
            assert state == CaseState.HELD and number not in now["asked"], (number, c)
    return sum(v == "done" for v in done.values())


def kill_during_commit(cfg_file: Path, writer: Writer, after: float | None,
                       while_running: Callable[[], None] | None = None) -> bool:
    """Start the commit and SIGKILL it: `after` seconds once it holds the lock (None: at
    once, before it can have started); True when it still held the lock at the kill."""
    proc = commit_process(cfg_file)
    if after is not None:
        wait_until(lambda: writer.busy() or proc.poll() is not None, 60, "the commit to start")
        time.sleep(after)
    if while_running is not None:
        while_running()
    # Frozen first, so the commit cannot finish between asking whether it still holds the
    # lock and the kill (a commit of these 210 cases takes well under a second).
    proc.send_signal(signal.SIGSTOP)
    mid = proc.poll() is None and after is not None and writer.busy()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return mid


def test_sigkill_during_commit_leaves_old_or_new(tmp_path: Path, db_url: str,
                                                 relay: CapturingRelay) -> None:
    w = start_world(tmp_path, db_url, relay)
    writer = Writer(db_url)
    try:
        w.send(TANAKA, "Release", RELEASE)  # a few over SMTP, as people file them
        number_of(w.one(TANAKA))
        w.send(SMITH, "Trip", travel("20,000"))
        w.one(SMITH)
        w.send(KATO, "Trip", travel("12,000"))
        w.one(KATO)
        w.app.stop()  # from here on the commands (other processes) run the change
        t0 = time.monotonic()
        open_many(w)
        cfg_file = write_config(w.app.cfg, tmp_path)
        (tmp_path / "org-2027-04.toml").write_text(PLAN)
        planned = ringi(cfg_file, "reorg", "plan", str(tmp_path / "org-2027-04.toml"))
        assert planned.exit_code == 0, planned.output
        plan = json.loads(ringi(cfg_file, "reorg", "verify", "--json").output)
        assert plan["counts"] == {"moves": 2 * PER_KIND, "fails": PER_KIND}, plan["counts"]
        began = ringi(cfg_file, "reorg", "begin")
        assert began.exit_code == 0, began.output
        before = state_of(w.app)
        assert before["reorg"] == "in_progress"
        print(f"{len(before['cases'])} cases opened, planned and begun in "
              f"{time.monotonic() - t0:.1f}s")

        def another_instance_sees_it() -> None:
            """While the commit holds its transaction open, PostgreSQL's other readers
            (another instance) still see the change in progress, and are not blocked."""
            if not db_url.startswith("sqlite"):
                inside = writer.busy()
                status = ringi(cfg_file, "status")
                if inside and writer.busy():  # (a commit this small may be over by now)
                    assert "REORGANISATION 1 IN PROGRESS" in status.output, status.output

        landed: list[tuple[float | None, bool, str]] = []
        for after in (None, 0.0, 1.0, 2.5, 5.0):
            mid = kill_during_commit(cfg_file, writer, after,
                                     another_instance_sees_it if after == 1.0 else None)
            landed.append((after, mid, assert_old_or_new(w, cfg_file, before, plan)))
            if landed[-1][2] == "new":
                break
        print(f"kills (seconds after the commit began, still in it, state): {landed}")
        assert any(mid and state == "old" for _, mid, state in landed), landed

        if landed[-1][2] == "old":  # and an unkilled commit completes
            t0 = time.monotonic()
            done = subprocess.run(command(cfg_file, "reorg", "commit", "--hold-failing"),
                                  cwd=ROOT, capture_output=True)
            print(f"unkilled commit (with the process's start): {time.monotonic() - t0:.1f}s")
            assert done.returncode == 0, done.stderr.decode()
            assert b"committed: reorganisation 1" in done.stdout
            assert assert_old_or_new(w, cfg_file, before, plan) == "new"

        # A daemon runs the reroutes and is killed half-way: each case is untouched or
        # whole; a restarted daemon reclaims the interrupted item and finishes.
        total = plan["counts"]["moves"] + plan["counts"]["fails"]
        daemon = subprocess.Popen(command(cfg_file, "run"), cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: rerouted(w.app) > 0, 120, "reroutes to start")
        finally:
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
        halfway = rerouted_or_not(w.app, plan)
        print(f"daemon killed with {halfway} of {total} cases rerouted")
        assert halfway > 0
        daemon = subprocess.Popen(command(cfg_file, "run"), cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: rerouted(w.app) == total, 180, "the restarted daemon to finish")
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
        assert rerouted_or_not(w.app, plan) == total
        assert "still being rerouted" not in ringi(cfg_file, "status").output
    finally:
        writer.close()
        w.app.stop()


def commit_paused(w: World, tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch,
                  meanwhile: Callable[[], None], answered: Callable[[], bool],
                  plan: Path | None = None) -> App:
    """A second instance commits the plan (`plan`, or NEW_ORG's), pausing inside its
    transaction after the first case while `meanwhile` sends mail to the running instance;
    it goes on once that mail's processing waits for a lock (or, wrongly, was `answered`
    without waiting). Returns the second instance."""
    import daemon.cases.reorganisation as module

    other = App(w.app.cfg, clock=w.clock)
    other.reorganisations.plan(plan or plan_file(tmp_path), None, "admin")
    other.reorganisations.begin("admin")
    real = module.withdraw_in_bulk
    inside, go_on = threading.Event(), threading.Event()

    def pause_after_switch(*args: Any, **kw: Any) -> None:
        real(*args, **kw)
        inside.set()
        assert go_on.wait(30)

    monkeypatch.setattr(module, "withdraw_in_bulk", pause_after_switch)
    commit = threading.Thread(target=other.reorganisations.commit, args=("admin", True))
    commit.start()
    try:
        assert inside.wait(30)  # the commit has withdrawn case A's ask, in its transaction
        meanwhile()
        engine = create_engine(db_url)
        try:
            with engine.connect() as conn:
                wait_until(lambda: answered() or conn.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()")).scalar(), 20, "the mail to wait")
        finally:
            engine.dispose()
    finally:
        go_on.set()
        commit.join(30)
    w.nothing_more()
    assert other.reorganisations.status()["reorganisations"][0]["state"] == "committed"
    return other


def test_a_reply_during_the_commit_waits_for_its_end(
        tmp_path: Path, db_url: str, relay: CapturingRelay,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL, two instances: a reply the daemon takes in while the commit's
    transaction is open is not kept for a change that is over by the time it is stored (it
    would never be processed), nor applied to the step the commit moved away: it waits for
    the commit and is then answered as things are."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite runs one writing transaction at a time")
    w = start_world(tmp_path, db_url, relay)
    try:
        f = file_three(w)
        to_suzuki = f["suzuki"]
        assert isinstance(to_suzuki, Captured)
        other = commit_paused(w, tmp_path, db_url, monkeypatch,
                              lambda: w.reply(to_suzuki, SUZUKI, "承認"),
                              lambda: len(relay.to(SUZUKI)) > 1)
        subjects = [m.subject for m in w.new(SUZUKI, 2)]
        assert not any("保管" in s for s in subjects), subjects  # not kept: the change is over
        assert any("受付できません" in s for s in subjects), subjects  # answered as it stands
        assert other.reorganisations.status()["reorganisations"][0]["kept_replies"] == 0
        assert w.case(str(f["a"])).state == "in_review"  # Sato's to decide
        other.store.dispose()
    finally:
        w.app.stop()


def test_a_request_during_the_commit_is_routed(
        tmp_path: Path, db_url: str, relay: CapturingRelay,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same for a new request: not registered for a change already over (it would wait
    for ever), but routed under the new directory once the commit is done."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite runs one writing transaction at a time")
    w = start_world(tmp_path, db_url, relay)
    try:
        file_three(w)
        other = commit_paused(w, tmp_path, db_url, monkeypatch,
                              lambda: w.send(TANAKA, "Release 2", RELEASE),
                              lambda: len(relay.to(TANAKA)) > 1)
        ack = w.one(TANAKA)
        assert "being reorganised" not in ack.body and "組織変更" not in ack.body, ack.body
        assert w.case(number_of(ack)).state == "in_review"
        asked = {number_of(m) for m in w.new(SATO, 2)}  # case A moved to Sato, and this
        assert number_of(ack) in asked, asked  # asks Engineering's new head
        other.store.dispose()
    finally:
        w.app.stop()


def test_a_request_during_the_commit_follows_the_requesters_new_post(
        tmp_path: Path, db_url: str, relay: CapturingRelay,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The requester of a request that waited for the commit is read again once it is over:
    Takahashi, moved from Sales to Procurement (both as chief), files a 60,000 trip while
    the commit runs. Routed from the post read before the wait, Brown (Sales) would be asked;
    from the post he holds now, nobody in Procurement ranks above him up to section
    manager, so the managers' step asks Mori (Procurement)."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite runs one writing transaction at a time")
    w = start_world(tmp_path, db_url, relay)
    try:
        file_three(w)
        moved = tmp_path / "org-2027-04.toml"
        moved.write_text(PLAN)
        before = len(relay.to(TAKAHASHI))
        other = commit_paused(w, tmp_path, db_url, monkeypatch,
                              lambda: w.send(TAKAHASHI, "Trip", travel("60,000")),
                              lambda: len(relay.to(TAKAHASHI)) > before, plan=moved)
        acks = [m for m in w.new(TAKAHASHI, 2) if number_of(m)]
        number = max(number_of(m) for m in acks)  # the trip (the other: Smith's case moved)
        assert w.case(number).state == "in_review"
        with w.app.store.transaction() as s:
            asked = set(s.scalars(select(CaseStep.approver_id).join(
                Case, Case.id == CaseStep.case_id).where(
                Case.number == number, CaseStep.state == StepState.PENDING)))
        assert asked == {"mori"}, asked
        assert not [m for m in relay.to(BROWN) if number in m.subject]
        other.store.dispose()
    finally:
        w.app.stop()
