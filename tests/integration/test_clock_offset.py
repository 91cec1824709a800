"""`ringi --clock-offset` / $RINGI_CLOCK_OFFSET: every command on a shifted clock, announced,
and refused on a production instance."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from daemon.app import App
from daemon.cli.main import cli
from daemon.store.models import CaseStep
from tests.support import ROOT, CapturingRelay, free_port, make_config, send, write_config

TRAVEL = ("Type: travel\nDestination: Sendai\nPurpose: Trade fair\nDeparture date: 2026-11-12\n"
          "Return date: 2026-11-13\nAmount: 51000\n")
RINGI = str(Path(sys.executable).parent / "ringi")  # the installed console script


def _config_file(tmp_path: Path, db_url: str, **sections: object) -> Path:
    cfg = make_config(tmp_path, db_url, None, free_port(), **sections)  # type: ignore[arg-type]
    return write_config(cfg, tmp_path)


def _shown_now(output: str) -> datetime:
    found = re.search(r"now (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", output)
    assert found, output
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def test_status_shows_the_shifted_now_from_the_option_and_the_variable(
        tmp_path: Path, db_url: str) -> None:
    cfg_file = _config_file(tmp_path, db_url)
    runner = CliRunner()
    plain = runner.invoke(cli, ["--config", str(cfg_file), "status"])
    assert plain.exit_code == 0, plain.output
    assert "SHIFTED" not in plain.output and "WARNING" not in plain.output

    real = datetime.now(UTC)
    shifted = runner.invoke(cli, ["--config", str(cfg_file), "--clock-offset", "31d", "status"])
    assert shifted.exit_code == 0, shifted.output
    assert "ringi: WARNING: clock offset +31d in effect" in shifted.output
    assert "clock     SHIFTED +31d: now" in shifted.output
    assert abs(_shown_now(shifted.output) - (real + timedelta(days=31))) < timedelta(minutes=1)

    env = runner.invoke(cli, ["--config", str(cfg_file), "status"],
                        env={"RINGI_CLOCK_OFFSET": "-PT36H"})
    assert env.exit_code == 0, env.output
    assert "clock     SHIFTED -1d12h: now" in env.output
    assert abs(_shown_now(env.output) - (real - timedelta(hours=36))) < timedelta(minutes=1)

    both = runner.invoke(cli, ["--config", str(cfg_file), "--clock-offset", "1d12h", "status"],
                         env={"RINGI_CLOCK_OFFSET": "-2d"})  # the option wins
    assert "clock     SHIFTED +1d12h: now" in both.output, both.output


def test_the_documented_variable_form_from_a_shell(tmp_path: Path, db_url: str) -> None:
    cfg_file = _config_file(tmp_path, db_url)
    env = {**os.environ, "RINGI_CONFIG": str(cfg_file),
           "PATH": f"{Path(RINGI).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RINGI_CLOCK_OFFSET", None)
    real = datetime.now(UTC)
    out = subprocess.run(["bash", "-c", "RINGI_CLOCK_OFFSET=-2d ringi status"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ringi: WARNING: clock offset -2d in effect" in out.stderr
    assert out.stdout.startswith("clock     SHIFTED -2d: now ")
    assert abs(_shown_now(out.stdout) - (real - timedelta(days=2))) < timedelta(minutes=1)


@pytest.mark.parametrize("given", ["31x", "1d1d", "P", "31 d", "9999999d"])
def test_bad_offsets_are_refused_readably(tmp_path: Path, given: str) -> None:
    cfg_file = _config_file(tmp_path, f"sqlite:///{tmp_path / 'r.db'}")
    runner = CliRunner()
    for args, env in ((["--clock-offset", given], {}), ([], {"RINGI_CLOCK_OFFSET": given})):
        out = runner.invoke(cli, ["--config", str(cfg_file), *args, "status"], env=env)
        assert out.exit_code == 2, out.output
        assert "is not a clock offset (use e.g. 31d, 12h, 90m, -2d, 1d12h or P31D)" \
            in out.output or "is more than ten years" in out.output
        assert "Traceback" not in out.output
    assert "(env var: 'RINGI_CLOCK_OFFSET')" in out.output


def test_production_instance_refuses_a_shifted_clock(tmp_path: Path) -> None:
    cfg_file = _config_file(tmp_path, f"sqlite:///{tmp_path / 'r.db'}",
                            instance={"production": True})
    runner = CliRunner()
    org = str(ROOT / "samples" / "organisation.toml")
    for command in (["status"], ["run"], ["case", "show", "R-2026-000001"],
                    ["directory", "import", org], ["factor", "set", "rate", "1"],
                    ["audit", "show"]):
        out = runner.invoke(cli, ["--config", str(cfg_file), "--clock-offset", "31d", *command])
        assert out.exit_code == 2, out.output
        assert "clock offset +31d refused: this instance is configured with [instance] " \
            "production = true" in out.output
    via_env = runner.invoke(cli, ["--config", str(cfg_file), "status"],
                            env={"RINGI_CLOCK_OFFSET": "12h"})
    assert via_env.exit_code == 2 and "refused" in via_env.output
    assert runner.invoke(cli, ["--config", str(cfg_file), "status"]).exit_code == 0


def test_record_commands_stamp_the_shifted_time(tmp_path: Path, db_url: str) -> None:
    cfg_file = _config_file(tmp_path, db_url)
    runner = CliRunner()
    base = ["--config", str(cfg_file)]
    set_ = runner.invoke(cli, [*base, "--clock-offset", "31d", "factor", "set", "rate", "0.35",
                               "--by", "sato"])
    assert set_.exit_code == 0, set_.output
    assert "ringi: WARNING: clock offset +31d in effect" in set_.output
    shown = runner.invoke(cli, [*base, "audit", "show"])
    assert shown.exit_code == 0, shown.output
    shifted_day = (datetime.now(UTC) + timedelta(days=31)).date().isoformat()
    assert shifted_day in shown.output and "factor rate" in shown.output, shown.output
    assert datetime.now(UTC).date().isoformat() not in shown.output


def test_run_with_an_offset_sends_the_reminder_that_is_due_then(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    cfg = make_config(tmp_path, db_url, relay.port, free_port(),
                      workflow={"reminder_after_days": 2, "escalate_after_days": 60,
                                "timer_seconds": 0.2})
    cfg_file = write_config(cfg, tmp_path)
    app = App(cfg)  # the real clock: the request is asked now
    app.prepare()
    app.start()
    try:
        send(cfg.smtp.port, "tanaka@example.com", "Sendai trade fair", TRAVEL)
        relay.wait_for("sato@example.com")
        assert app.timers.run_once() == 0  # on the real clock nothing is due yet
    finally:
        app.stop()
    assert len(relay.to("sato@example.com")) == 1

    env = {**os.environ, "RINGI_CONFIG": str(cfg_file)}
    env.pop("RINGI_CLOCK_OFFSET", None)
    log = tmp_path / "daemon.log"
    real = datetime.now(UTC)
    with log.open("ab") as out:
        proc = subprocess.Popen([RINGI, "--clock-offset", "31d", "run"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            reminder = relay.wait_for("sato@example.com", 2, timeout=60)[1]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
    text = log.read_text()
    assert re.search(r"WARNING daemon\.clock: clock offset \+31d in effect: now is 20", text)
    assert abs(_shown_now(text.replace("now is", "now")) - (real + timedelta(days=31))) \
        < timedelta(minutes=1)
    assert "sato@example.com" in reminder.rcpt
    assert "【催促】" in reminder.body or "REMINDER:" in reminder.body
    with app.store.transaction() as s:
        step = s.scalars(select(CaseStep).where(CaseStep.reminded_at.is_not(None))).one()
        reminded = step.reminded_at.replace(tzinfo=step.reminded_at.tzinfo or UTC)
    assert reminded - real > timedelta(days=30)  # stamped on the shifted clock
    app.store.dispose()
