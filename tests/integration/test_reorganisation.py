"""The reorganisation procedure end to end: plan, verify, begin, commit, rollback.

Three cases wait when the plan is made: one whose post changes hands (Engineering's head
passes from Suzuki to Sato), one untouched (Sales' line), one whose approver leaves with
nobody above (Ito, Accounting). Requests and replies arrive during the change.
"""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from daemon.app import App
from daemon.cases.reorganisation import ReorgError
from daemon.cases.reorgrunner import rerouting
from daemon.clock import FrozenClock
from daemon.store.models import CaseStep, OutboundMail, WorkItem
from daemon.store.reorg_models import Reorganisation
from tests.integration.orgworld import (
    ENG_HEAD,
    ORG,
    decide,
    event_kinds,
    file_release,
    org_file,
    running_world,
)
from tests.integration.test_outcomes import (
    ADMIN,
    ITO,
    SATO,
    SMITH,
    SUZUKI,
    TAKAHASHI,
    TANAKA,
    World,
    number_of,
    travel,
)
from tests.support import ROOT, CapturingRelay, free_port, make_config, ringi, write_config

KATO = "kato@example.com"
ITO_POST = 'unit = "accounting"\nposition = "section_manager"'
NEW_ORG = ORG.replace(ENG_HEAD, ENG_HEAD.replace("suzuki", "sato")).replace(
    ITO_POST, ITO_POST + "\nactive = false")


def file_three(w: World) -> dict[str, object]:
    a, to_suzuki = file_release(w)
    w.send(SMITH, "Trip", travel("20,000"))
    b = number_of(w.one(SMITH))
    to_takahashi = w.one(TAKAHASHI)
    w.send(KATO, "Trip", travel("12,000"))
    c = number_of(w.one(KATO))
    to_ito = w.one(ITO)
    return {"a": a, "b": b, "c": c, "suzuki": to_suzuki, "takahashi": to_takahashi,
            "ito": to_ito}


def plan_file(tmp_path: Path) -> Path:
    return org_file(tmp_path, NEW_ORG, "org-2027.toml")


def begun(w: World, tmp_path: Path) -> dict[str, object]:
    """The three cases filed, the new organisation planned and the reorganisation begun."""
    f = file_three(w)
    w.app.reorganisations.plan(plan_file(tmp_path), None, "admin")
    w.app.reorganisations.begin("admin")
    return f


def test_plan_begin_commit_rollback(tmp_path: Path, db_url: str,
                                    relay: CapturingRelay) -> None:
    with running_world(tmp_path, db_url, relay) as w:
        reorgs = w.app.reorganisations
        f = file_three(w)
        report = reorgs.plan(plan_file(tmp_path), None, "admin")
        by_case = {c.number: c for c in report.checks}
        assert by_case[f["a"]].outcome == "moves" and by_case[f["a"]].new == ("sato",)
        assert by_case[f["b"]].outcome == "unchanged"
        assert (by_case[f["c"]].outcome, by_case[f["c"]].reason) == (
            "fails", "no approver left above")
        assert reorgs.verify().counts == report.counts  # again and again, nothing changes
        w.nothing_more(SATO, SUZUKI, ITO, TANAKA, KATO)
        with pytest.raises(ReorgError, match="is planned"):
            reorgs.plan(plan_file(tmp_path), None, "admin")

        reorgs.begin("admin")
        w.send(SMITH, "Trip 2", travel("15,000"))  # registered, not routed
        ack = w.one(SMITH)
        d = number_of(ack)
        assert "being reorganised" in ack.body
        assert w.case(d).state == "received"
        w.reply(f["takahashi"], TAKAHASHI, "承認")  # kept, applied after the commit
        assert "組織変更の完了まで保管" in w.one(TAKAHASHI).subject
        w.reply(f["suzuki"], SUZUKI, "承認")  # kept; Suzuki will no longer be the approver
        assert "保管" in w.one(SUZUKI).subject
        w.nothing_more(TAKAHASHI, SATO)
        assert w.case(f["b"]).state == "in_review"

        with pytest.raises(ReorgError, match="1 case"):  # C would fail: refused, no change
            reorgs.commit("admin")
        w.nothing_more(SATO, SUZUKI, KATO)
        report = reorgs.commit("admin", hold_failing=True)
        assert report.counts["moves"] == 1
        new_ask = w.one(SATO)
        assert "承認依頼" in new_ask.subject and number_of(new_ask) == f["a"]
        mails = w.new(SUZUKI, 2)  # the case left them; their kept reply no longer counts
        assert all("ご判断は不要" in m.subject or "受付できません" in m.subject for m in mails)
        assert "停止中" in w.one(KATO).subject and w.case(f["c"]).state == "held"
        got = {number_of(m): m.subject for m in w.new(TAKAHASHI, 2)}
        assert "承認しました" in got[f["b"]]  # the kept reply, applied
        assert "承認依頼" in got[d]  # request D routed now, under the new directory
        assert "has now been routed" in w.one(SMITH).body
        assert "decision" in event_kinds(w, f["b"])  # on to Brown now

        left = reorgs.rollback("admin")
        assert left == []
        assert "ご判断は不要" in w.one(SATO).subject  # Sato's ask withdrawn
        back = w.one(SUZUKI)
        assert "再度ご判断" in back.subject and number_of(back) == f["a"]
        assert number_of(w.one(ITO)) == f["c"]  # Ito is back, and asked again
        w.reply(new_ask, SATO, "承認")  # Sato's token died with the rollback
        assert "受付できません" in w.one(SATO).subject
        decide(w, f["suzuki"], SUZUKI, "承認")  # the original mail works again
        assert w.case(f["a"]).state == "approved"
        assert w.case(f["c"]).state == "in_review"
        kinds = event_kinds(w, f["a"])
        assert "reassigned" in kinds and "restored" in kinds
        with w.app.store.transaction() as s:
            row = s.scalar(select(Reorganisation).order_by(Reorganisation.id.desc()))
            assert row is not None and row.state == "rolled_back"


def test_effective_time_commits_by_itself(tmp_path: Path, db_url: str,
                                          relay: CapturingRelay) -> None:
    with running_world(tmp_path, db_url, relay) as w:
        reorgs = w.app.reorganisations
        f = file_three(w)
        when = w.clock.now() + timedelta(days=1)
        reorgs.plan(plan_file(tmp_path), when, "admin")
        assert w.app.timers.run_once() == 0
        w.nothing_more(SATO)
        w.clock.advance(timedelta(days=1))
        w.app.timers.run_once()
        assert number_of(w.one(SATO)) == f["a"]
        w.rerouted()
        assert w.case(f["c"]).state == "held"  # configured default: hold the failing ones
        alert = w.one(ADMIN)
        assert "committed" in alert.subject and f["c"] in alert.body
        assert reorgs.status()["reorganisations"][0]["state"] == "committed"


def test_effective_time_rolls_back_when_so_configured(tmp_path: Path, db_url: str,
                                                      relay: CapturingRelay) -> None:
    with running_world(tmp_path, db_url, relay, workflow={"reorg_on_failure": "rollback"}) as w:
        reorgs = w.app.reorganisations
        f = file_three(w)
        reorgs.plan(plan_file(tmp_path), w.clock.now(), "admin")
        w.app.timers.run_once()
        alert = w.one(ADMIN)
        assert "rolled back" in alert.subject and "no approver left above" in alert.body
        w.nothing_more(SATO, SUZUKI)
        assert w.case(f["a"]).state == "in_review" and w.case(f["c"]).state == "in_review"
        assert reorgs.status()["reorganisations"][0]["state"] == "rolled_back"


def test_commit_is_one_transaction(tmp_path: Path, db_url: str, relay: CapturingRelay,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure half-way through the commit leaves the old directory and every case."""
    import daemon.cases.reorganisation as module

    with running_world(tmp_path, db_url, relay) as w:
        reorgs = w.app.reorganisations
        f = begun(w, tmp_path)
        real = module.withdraw_in_bulk

        def crash_after(*args: Any, **kw: Any) -> None:
            real(*args, **kw)  # every ask withdrawn, every item queued: then the power goes
            raise RuntimeError("power cut")

        monkeypatch.setattr(module, "withdraw_in_bulk", crash_after)
        with w.app.store.transaction() as s:
            before = s.scalar(select(func.count(OutboundMail.id)))
            pending = s.scalar(select(func.count(CaseStep.id)).where(
                CaseStep.state == "pending"))
        with pytest.raises(RuntimeError):
            reorgs.commit("admin", hold_failing=True)
        with w.app.store.transaction() as s:
            assert s.scalar(select(func.count(OutboundMail.id))) == before
            assert s.scalar(select(func.count(CaseStep.id)).where(
                CaseStep.state == "pending")) == pending
            assert s.scalar(select(func.count(WorkItem.id)).where(
                WorkItem.queue == "reorg")) == 0
            assert rerouting(s) == 0
        assert w.case(f["a"]).state == "in_review" and w.case(f["c"]).state == "in_review"
        assert "rerouting" not in (w.case(f["a"]).route or {})
        assert reorgs.status()["reorganisations"][0]["state"] == "in_progress"
        monkeypatch.setattr(module, "withdraw_in_bulk", real)
        reorgs.commit("admin", hold_failing=True)  # and it can be committed afterwards
        assert number_of(w.one(SATO)) == f["a"]


def test_commit_switches_at_once_and_cases_follow(tmp_path: Path, db_url: str,
                                                   relay: CapturingRelay) -> None:
    """From the commit on, the old approver's mail is dead; the new ask, the old approver's
    notice and the hold follow from the case's work item, in order."""
    with running_world(tmp_path, db_url, relay) as w:
        reorgs = w.app.reorganisations
        f = begun(w, tmp_path)
        w.app.reorg_runner.stop()  # the items wait: the state between commit and reroute
        reorgs.commit("admin", hold_failing=True)
        assert reorgs.status()["reorganisations"][0]["rerouting"] == 2
        a = w.case(f["a"])
        assert a.state == "in_review" and a.route is not None and a.route["rerouting"] == 1
        with w.app.store.transaction() as s:
            assert s.scalars(select(CaseStep.state).where(CaseStep.case_id == a.id)).all() \
                == ["superseded"]
        w.reply(f["suzuki"], SUZUKI, "承認")  # the switch is made: Suzuki's ask is dead
        w.app.inbound_runner.drain()
        assert "受付できません" in w.one(SUZUKI).subject
        w.app.outbox_runner.drain()
        assert relay.to(SATO) == [] and relay.to(KATO)[w.seen[KATO]:] == []
        w.rerouted()
        new_ask = w.one(SATO)
        assert "承認依頼" in new_ask.subject and number_of(new_ask) == f["a"]
        assert "ご判断は不要" in w.one(SUZUKI).subject
        assert "停止中" in w.one(KATO).subject and w.case(f["c"]).state == "held"
        assert "rerouting" not in (w.case(f["a"]).route or {})
        assert "reassigned" in event_kinds(w, f["a"])
        decide(w, new_ask, SATO, "承認")
        assert w.case(f["a"]).state == "approved"


def test_rollback_before_the_cases_were_rerouted(tmp_path: Path, db_url: str,
                                                 relay: CapturingRelay) -> None:
    """The withdrawn asks are reopened with their tokens; the queued reroutes do nothing."""
    with running_world(tmp_path, db_url, relay) as w:
        reorgs = w.app.reorganisations
        f = begun(w, tmp_path)
        w.app.reorg_runner.stop()
        reorgs.commit("admin", hold_failing=True)
        assert reorgs.rollback("admin") == []
        assert reorgs.status()["reorganisations"][0]["rerouting"] == 0
        w.nothing_more(SATO, SUZUKI, ITO, KATO)  # the items ran and did nothing
        with w.app.store.transaction() as s:
            assert s.scalars(select(WorkItem.state).where(WorkItem.queue == "reorg")).all() \
                == ["done", "done"]
        assert w.case(f["c"]).state == "in_review"
        assert "rerouting" not in (w.case(f["a"]).route or {})
        decide(w, f["suzuki"], SUZUKI, "承認")  # the original mail works again
        assert w.case(f["a"]).state == "approved"
        decide(w, f["ito"], ITO, "承認")
        assert w.case(f["c"]).state != "in_review"


def test_a_reroute_that_keeps_failing_is_told(tmp_path: Path, db_url: str,
                                              relay: CapturingRelay,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A case whose reroute fails on every attempt is a dead letter the administrator is
    told about, naming the case; the retry command runs it once the cause is gone."""
    import daemon.cases.reorgrunner as module

    with running_world(tmp_path, db_url, relay) as w:
        reorgs = w.app.reorganisations
        f = begun(w, tmp_path)
        w.app.reorg_runner.stop()
        real = module.act_withdrawn

        def broken(*args: Any, **kw: Any) -> list[Any]:
            raise RuntimeError("a bug")

        monkeypatch.setattr(module, "act_withdrawn", broken)
        reorgs.commit("admin", hold_failing=True)
        w.one(ADMIN)  # the commit's summary
        for _ in range(w.app.cfg.queue.max_attempts):
            w.clock.advance(timedelta(hours=1))
            w.app.reorg_runner.drain()
        w.app.outbox_runner.drain()
        dead = {m.subject: m for m in w.new(ADMIN, 2)}
        told = next(m for s, m in dead.items() if f["a"] in s)
        assert "reroute after reorganisation 1" in told.subject
        with w.app.store.transaction() as s:
            item = s.scalar(select(WorkItem).where(WorkItem.queue == "reorg",
                                                   WorkItem.state == "dead").limit(1))
            assert item is not None
        assert reorgs.status()["reorganisations"][0]["rerouting"] == 2
        monkeypatch.setattr(module, "act_withdrawn", real)
        with w.app.store.transaction() as s:
            items = s.scalars(select(WorkItem.id).where(WorkItem.queue == "reorg")).all()
        for item_id in items:
            assert w.app.queue.retry(item_id)
        w.rerouted()
        assert number_of(w.one(SATO)) == f["a"] and w.case(f["c"]).state == "held"


def guide_commands() -> list[str]:
    section = (ROOT / "docs" / "administrators.md").read_text()
    section = section.split("\n## Reorganisations\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    return [ln.strip() for ln in section.splitlines() if ln.startswith("       ringi ")]


def test_the_guide_procedure_runs_as_written(tmp_path: Path, db_url: str,
                                             relay: CapturingRelay,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command of docs/administrators.md's "Reorganisations", verbatim, in its order,
    through the CLI."""
    clock = FrozenClock(datetime.now(UTC))
    app = App(make_config(tmp_path, db_url, relay.port, free_port()), clock=clock)
    app.prepare()
    app.start()
    w = World(app, relay, clock)
    try:
        f = file_three(w)
        cfg_file = write_config(app.cfg, tmp_path)
        (tmp_path / "org-2027-04.toml").write_text(NEW_ORG)
        monkeypatch.chdir(tmp_path)

        def run(command: str) -> Any:
            args = shlex.split(command)
            assert args[0] == "ringi"
            return ringi(cfg_file, *args[1:])

        commands = guide_commands()
        assert commands == [
            "ringi reorg plan org-2027-04.toml --effective 2027-04-01T00:00",
            "ringi reorg verify", "ringi reorg verify --json", "ringi reorg begin",
            "ringi reorg commit", "ringi reorg commit --hold-failing", "ringi reorg rollback",
            "ringi reorg status"]
        dry = run("ringi directory import --dry-run org-2027-04.toml")  # as the text says
        assert dry.exit_code == 0, dry.output
        assert "+ role eng/head sato" in dry.output and "- role eng/head suzuki" in dry.output
        assert "moves to sato from suzuki" in dry.output and "fails: no approver left above" \
            in dry.output
        planned = run(commands[0])
        assert planned.exit_code == 0, planned.output
        assert "planned: reorganisation 1, effective 2027-04-01T00:00:00" in planned.output
        assert f"{f['c']}" in planned.output and "3 waiting ask(s)" in planned.output
        again = run(commands[0])
        assert again.exit_code == 1 and "ringi reorg cancel 1" in again.output
        verified = run(commands[1])
        assert verified.exit_code == 1 and "moves to sato" in verified.output
        data = json.loads(run(commands[2]).output)
        assert data["counts"] == {"moves": 1, "unchanged": 1, "fails": 1}
        assert run(commands[3]).exit_code == 0
        status = run("ringi status")
        assert "REORGANISATION 1 IN PROGRESS" in status.output, status.output
        refused = run(commands[4])
        assert refused.exit_code == 1 and "--hold-failing" in refused.output
        done = run(commands[5])
        assert done.exit_code == 0 and "committed: reorganisation 1" in done.output
        listed = run(commands[7])
        assert "still being rerouted: 2 case(s)" in listed.output, listed.output
        # The commands ran on the real clock and queued the reroutes and mails (the daemon's
        # clock is behind it); the daemon runs them.
        w.clock.advance(timedelta(minutes=10))
        w.rerouted()
        shown = run(f"ringi case show {f['c']}")
        assert "state:     held" in shown.output
        assert "held:      at line/up-to-section-manager: no approver left above" in shown.output
        status = run("ringi status")
        assert "held cases (nobody can approve them): 1" in status.output
        assert "IN PROGRESS" not in status.output and "still being rerouted" not in \
            status.output
        w.app.outbox_runner.drain()
        assert number_of(w.one(SATO)) == f["a"]
        back = run(commands[6])
        assert back.exit_code == 0 and "rolled back" in back.output
        listed = run(commands[7])
        assert listed.exit_code == 0 and "rolled_back" in listed.output
        trail = run('ringi audit show --subject "reorganisation 1"')  # as the page says
        for step in ("planned", "begun", "committed", "rolled back"):
            assert f"reorganisation {step}" in trail.output
        assert w.case(f["c"]).state == "in_review"
    finally:
        app.stop()
