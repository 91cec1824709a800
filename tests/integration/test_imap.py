"""IMAP intake against a real Dovecot on loopback: nothing lost, nothing taken twice."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from daemon.app import App
from daemon.config import Config
from daemon.intake.imap import ImapChannel
from daemon.store.db import Store
from daemon.store.models import Case, InboundMessage
from tests.imap_server import DovecotServer, dovecot_available
from tests.support import (
    REQUEST,
    ROOT,
    CapturingRelay,
    free_port,
    make_config,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.skipif(
    not dovecot_available(),
    reason="Dovecot is not installed (scripts/test.sh installs dovecot-imapd)")

TRAVEL = ("Type: travel\nDestination: Osaka\nPurpose: Visit {n}\nDeparture date: 2026-11-10\n"
          "Return date: 2026-11-11\nAmount: 54500\n")
FLAG = "$RingiProcessed"


def request_mail(n: int, sender: str = "tanaka@example.com", to: str = REQUEST) -> bytes:
    msg = EmailMessage()
    msg["Return-Path"] = f"<{sender}>"
    msg["Delivered-To"] = to
    msg["From"], msg["To"], msg["Subject"] = sender, to, f"Trip {n}"
    msg["Message-ID"] = make_msgid(domain="example.com")
    msg.set_content(TRAVEL.format(n=n))
    return msg.as_bytes()


def imap_config(tmp_path: Path, db_url: str, relay: CapturingRelay, server: DovecotServer,
                **account: Any) -> Config:
    pw = tmp_path / "imap.password"
    pw.write_text(server.password)
    os.chmod(pw, 0o600)
    acc = {"name": "corp", "host": server.host, "port": server.port, "security": "none",
           "username": server.user, "password_file": str(pw), "poll_seconds": 0.5,
           "reconnect_max_seconds": 1.0, "timeout_seconds": 10.0, **account}
    if server.ca_file is not None:
        acc["ca_file"] = str(server.ca_file)
    return make_config(tmp_path, db_url, relay.port, free_port(), imap=[acc])


def count_cases(store: Store) -> int:
    with store.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(Case)) or 0)


@pytest.fixture
def dovecot(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DovecotServer]:
    params = getattr(request, "param", {})
    server = DovecotServer(tmp_path / "dovecot", **params)
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    "dovecot", [{"idle": True}, {"idle": False}, {"tls": "starttls"}, {"tls": "implicit"}],
    ids=["idle", "polling", "starttls", "tls"], indirect=True)
def test_messages_become_cases_and_are_flagged(tmp_path: Path, db_url: str,
                                               relay: CapturingRelay,
                                               dovecot: DovecotServer) -> None:
    tls_mode = getattr(dovecot, "tls", "none")
    security = {"starttls": "starttls", "implicit": "tls"}.get(tls_mode, "none")
    cfg = imap_config(tmp_path, db_url, relay, dovecot, security=security)
    dovecot.append("INBOX", request_mail(1))
    app = App(cfg)
    app.prepare()
    app.start()
    try:
        relay.wait_for("sato@example.com")
        dovecot.append("INBOX", request_mail(2))  # arrives while connected (IDLE or poll)
        relay.wait_for("sato@example.com", 2)
        assert count_cases(app.store) == 2
        flags = [f for _, f, _ in dovecot.messages("INBOX")]
        assert all({"\\Seen", FLAG} <= f for f in flags) and len(flags) == 2
        if tls_mode != "none":
            assert all(tls for _, _, tls in dovecot.logins())
    finally:
        app.stop()


def test_move_mode_and_replies_by_imap(tmp_path: Path, db_url: str, relay: CapturingRelay,
                                       dovecot: DovecotServer) -> None:
    cfg = imap_config(tmp_path, db_url, relay, dovecot, processed="move",
                      move_to="ringi-done")
    app = App(cfg)
    app.prepare()
    app.start()
    try:
        dovecot.append("INBOX", request_mail(1))
        request = relay.wait_for("sato@example.com")[0]
        # Sato's reply reaches the same mailbox, addressed to the plus-address.
        reply = EmailMessage()
        token_addr = str(request.message["Reply-To"])
        reply["Delivered-To"] = token_addr
        reply["From"], reply["To"] = "sato@example.com", token_addr
        reply["Subject"] = "Re: " + request.subject
        reply.set_content("承認\n\n> " + request.subject)
        dovecot.append("INBOX", reply.as_bytes())
        relay.wait_for("suzuki@example.com")
        wait_until(lambda: dovecot.messages("INBOX") == [], 10, "INBOX emptied")
        assert len(dovecot.messages("ringi-done")) == 2
    finally:
        app.stop()


class CrashAfterStore(ImapChannel):
    """Dies after the message is stored and before it is flagged, once."""

    def acknowledge(self, client: Any, uid: int) -> None:
        if not getattr(self, "crashed", False):
            self.crashed = True
            raise ConnectionError("simulated crash between store and flag")
        super().acknowledge(client, uid)


def test_store_then_crash_then_restart_yields_one_case(tmp_path: Path, db_url: str,
                                                       relay: CapturingRelay,
                                                       dovecot: DovecotServer) -> None:
    cfg = imap_config(tmp_path, db_url, relay, dovecot)
    app = App(cfg)
    app.prepare()
    dovecot.append("INBOX", request_mail(1))
    first = CrashAfterStore(cfg.imap[0], app.queue, lambda: None)
    client, uidvalidity = first.connect()
    with pytest.raises(ConnectionError):
        first.sweep(client, uidvalidity)
    client.logout()
    assert [f for _, f, _ in dovecot.messages("INBOX")] == [set()]  # stored, not flagged
    again = ImapChannel(cfg.imap[0], app.queue, lambda: None)  # the restarted daemon
    client, uidvalidity = again.connect()
    assert again.sweep(client, uidvalidity) == 1
    client.logout()
    assert FLAG in dovecot.messages("INBOX")[0][1]
    with app.store.transaction() as s:
        assert s.scalar(select(func.count()).select_from(InboundMessage)) == 1
    app.inbound_runner.drain()
    assert count_cases(app.store) == 1
    app.stop()


def test_sigkill_during_imap_intake(tmp_path: Path, db_url: str, relay: CapturingRelay,
                                    dovecot: DovecotServer) -> None:
    cfg = imap_config(tmp_path, db_url, relay, dovecot)
    cfg.smtp.enabled = False
    cfg_file = write_config(cfg, tmp_path)
    n = 30
    for i in range(n):
        dovecot.append("INBOX", request_mail(i))
    log = open(tmp_path / "daemon.log", "ab")  # noqa: SIM115
    cmd = [sys.executable, "-m", "daemon", "--config", str(cfg_file), "run"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    store = Store(cfg.database_url)
    try:
        def stored() -> int:
            try:
                with store.transaction() as s:
                    return int(s.scalar(select(func.count()).select_from(InboundMessage)) or 0)
            except Exception:
                return 0  # not migrated yet

        wait_until(lambda: stored() >= 3, 30, "the first messages stored")
        proc.send_signal(signal.SIGKILL)  # mid-sweep: some stored, maybe not yet flagged
        proc.wait(10)
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: count_cases(store) == n, 120, f"{n} cases")
        wait_until(lambda: all(FLAG in f for _, f, _ in dovecot.messages("INBOX")), 20,
                   "every message flagged")
        with store.transaction() as s:
            titles = sorted(s.scalars(select(Case.title)))
        assert titles == sorted(f"Trip {i}" for i in range(n))
    finally:
        proc.terminate()
        proc.wait(20)
        store.dispose()
        log.close()


def test_server_restart_is_survived(tmp_path: Path, db_url: str, relay: CapturingRelay,
                                    dovecot: DovecotServer) -> None:
    cfg = imap_config(tmp_path, db_url, relay, dovecot)
    app = App(cfg)
    app.prepare()
    app.start()
    try:
        (channel,) = app.imap
        wait_until(channel.connected.is_set, 10, "connected")
        dovecot.restart()  # the session is cut mid-IDLE
        dovecot.append("INBOX", request_mail(1))
        relay.wait_for("sato@example.com", timeout=30)
        dovecot.stop()
        dovecot.start()
        dovecot.append("INBOX", request_mail(2))
        relay.wait_for("sato@example.com", 2, timeout=30)
        assert count_cases(app.store) == 2
        assert re.search(r"R-\d{4}-000002", relay.to("sato@example.com")[1].subject)
    finally:
        app.stop()


def test_several_mailboxes(tmp_path: Path, db_url: str, relay: CapturingRelay,
                           dovecot: DovecotServer) -> None:
    cfg = imap_config(tmp_path, db_url, relay, dovecot)
    second = cfg.imap[0].model_copy(update={"name": "sales", "mailbox": "Sales"})
    cfg.imap.append(second)
    dovecot.create_mailbox("Sales")
    dovecot.append("INBOX", request_mail(1))
    dovecot.append("Sales", request_mail(2, sender="smith@example.com"))
    app = App(cfg)
    app.prepare()
    app.start()
    try:
        relay.wait_for("sato@example.com")
        relay.wait_for("takahashi@example.com")
        assert count_cases(app.store) == 2
        with app.store.transaction() as s:
            keys = sorted(k or "" for k in s.scalars(select(InboundMessage.source_key)))
        assert keys[0].startswith("imap:corp:INBOX:") and keys[1].startswith("imap:sales:Sales:")
    finally:
        app.stop()
