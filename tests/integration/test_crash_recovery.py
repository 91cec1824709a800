"""SIGKILL the real daemon right after a 250; the restart must lose nothing and repeat nothing."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from daemon.store.db import Store
from daemon.store.models import Case
from tests.support import (
    ROOT,
    CapturingRelay,
    free_port,
    make_config,
    send,
    wait_until,
    write_config,
)

TRAVEL = ("Type: travel\nDestination: Nagoya\nPurpose: Audit\nDeparture date: 2026-11-10\n"
          "Return date: 2026-11-10\nAmount: 9800\n")


class DaemonProcess:
    def __init__(self, config_file: Path, port: int, log: Path) -> None:
        self.config_file, self.port, self.log = config_file, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, **env: str) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "daemon", "--config", str(self.config_file), "run"],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env},
            )

        def listening() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited:\n{self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False

        wait_until(listening, 30, "the daemon to listen")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


@pytest.fixture
def daemon_proc(tmp_path: Path, db_url: str, relay: CapturingRelay) -> Iterator[DaemonProcess]:
    port = free_port()
    cfg = make_config(tmp_path, db_url, relay.port, port)
    cfg_file = write_config(cfg, tmp_path)
    proc = DaemonProcess(cfg_file, port, tmp_path / "daemon.log")
    proc.db_url = db_url  # type: ignore[attr-defined]
    yield proc
    proc.terminate()


def count_cases(db_url: str) -> int:
    store = Store(db_url)
    try:
        with store.transaction() as s:
            return int(s.scalar(select(func.count()).select_from(Case)) or 0)
    finally:
        store.dispose()


def test_stored_but_unprocessed_mail_survives_sigkill(
    daemon_proc: DaemonProcess, relay: CapturingRelay
) -> None:
    # Runners off: the 250 can only mean "stored", nothing has been processed yet.
    daemon_proc.start(RINGI_QUEUE__RUNNERS="false")
    send(daemon_proc.port, "tanaka@example.com", "Nagoya audit", TRAVEL)
    daemon_proc.kill()
    assert count_cases(daemon_proc.db_url) == 0  # type: ignore[attr-defined]
    assert relay.mails == []

    daemon_proc.start()
    ack = relay.wait_for("tanaka@example.com")[0]
    request = relay.wait_for("sato@example.com")[0]
    number = re.search(r"R-\d{4}-\d{6}", ack.subject)
    assert number and number.group(0) in request.subject
    assert count_cases(daemon_proc.db_url) == 1  # type: ignore[attr-defined]


def test_kill_right_after_250_loses_and_repeats_nothing(
    daemon_proc: DaemonProcess, relay: CapturingRelay
) -> None:
    daemon_proc.start()
    senders = ["tanaka@example.com", "smith@example.com", "takahashi@example.com"]
    for who in senders:
        send(daemon_proc.port, who, "Trip", TRAVEL)
    daemon_proc.kill()  # immediately after the last 250, whatever was in flight
    daemon_proc.start()
    def acks() -> list[str]:
        return [m.subject for who in senders for m in relay.to(who)
                if "Received" in m.subject or "受付" in m.subject]

    def numbered() -> set[str]:
        return {m.group(1) for s in acks() if (m := re.search(r"R-\d{4}-(\d{6})", s))}

    # At least once: a kill between the relay's 250 and our commit resends an ack, so wait
    # for three different case numbers, not three mails.
    wait_until(lambda: len(numbered()) >= 3, 30, "three acknowledgements")
    # tanaka -> sato; smith -> takahashi; takahashi -> brown
    for approver in ("sato@example.com", "takahashi@example.com", "brown@example.com"):
        relay.wait_for(approver)
    assert count_cases(daemon_proc.db_url) == 3  # type: ignore[attr-defined]
    # Mail delivery is at-least-once (a kill between relay 250 and our commit resends), but
    # each request became exactly one case, with one number.
    numbers = {re.search(r"R-\d{4}-(\d{6})", s).group(1) for s in acks()}  # type: ignore[union-attr]
    assert numbers == {"000001", "000002", "000003"}
