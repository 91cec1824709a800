"""The same mail by IMAP again (new UID, another mailbox) and by SMTP: acted on once.

A real Dovecot on loopback (tests/imap_server.py) and ringi's real SMTP listener.
"""

from __future__ import annotations

import os
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select

from daemon.app import App
from daemon.store.models import Case, InboundMessage, WorkItem
from tests.imap_server import DovecotServer, dovecot_available
from tests.support import REQUEST, CapturingRelay, free_port, make_config, wait_until

pytestmark = pytest.mark.skipif(
    not dovecot_available(),
    reason="Dovecot is not installed (scripts/test.sh installs dovecot-imapd)")

FLAG = "$RingiProcessed"
TRACE = (b"Return-Path: <{who}>\r\nDelivered-To: {to}\r\n"
         b"Received: from mx.example.com by imap.example.com; Mon, 2 Nov 2026 09:0{n}:00\r\n")


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[DovecotServer]:
    server = DovecotServer(tmp_path / "dovecot")
    server.start()
    yield server
    server.stop()


def as_delivered(raw: bytes, who: str, to: str, n: int) -> bytes:
    """The copy a mailbox holds: the delivery's own trace fields on top."""
    return TRACE.replace(b"{who}", who.encode()).replace(b"{to}", to.encode()) \
        .replace(b"{n}", str(n).encode()) + raw


def mail(sender: str, to: str, subject: str, body: str, msgid: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"] = "Mon, 2 Nov 2026 09:00:00 +0900"
    msg["Message-ID"] = msgid
    msg.set_content(body)
    return msg.as_bytes().replace(b"\n", b"\r\n")


def smtp_data(port: int, sender: str, to: str, raw: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo()
        c.mail(sender)
        c.rcpt(to)
        return c.data(raw)


def intake(app: App) -> list[tuple[str, int | None]]:
    with app.store.transaction() as s:
        return [(r.channel, r.duplicate_of) for r in
                s.scalars(select(InboundMessage).order_by(InboundMessage.id))]


def settled(app: App) -> bool:
    with app.store.transaction() as s:
        return not s.scalar(select(func.count()).select_from(WorkItem)
                            .where(WorkItem.queue.in_(("inbound", "outbound")),
                                   WorkItem.state.in_(("queued", "running"))))


def all_flagged(server: DovecotServer, *mailboxes: str) -> bool:
    return all(FLAG in flags for box in mailboxes for _, flags, _ in server.messages(box))


def test_same_mail_by_imap_twice_another_mailbox_and_smtp_is_one_case(
        tmp_path: Path, db_url: str, relay: CapturingRelay, dovecot: DovecotServer) -> None:
    pw = tmp_path / "imap.password"
    pw.write_text(dovecot.password)
    os.chmod(pw, 0o600)
    account = {"host": dovecot.host, "port": dovecot.port, "security": "none",
               "username": dovecot.user, "password_file": str(pw), "poll_seconds": 0.3,
               "reconnect_max_seconds": 1.0, "timeout_seconds": 10.0}
    dovecot.create_mailbox("Shared")
    cfg = make_config(tmp_path, db_url, relay.port, free_port(), imap=[
        {"name": "inbox", **account}, {"name": "shared", "mailbox": "Shared", **account}])
    tanaka, sato = "tanaka@example.com", "sato@example.com"
    request = mail(tanaka, REQUEST, "Osaka visit", "Type: travel\nDestination: Osaka\n"
                   "Purpose: Visit\nDeparture date: 2026-11-10\nReturn date: 2026-11-11\n"
                   "Amount: 54500\n", "<osaka-1@example.com>")
    app = App(cfg)
    app.prepare()
    app.start()
    try:
        dovecot.append("INBOX", as_delivered(request, tanaka, REQUEST, 1))
        ask = relay.wait_for(sato)[0]
        # The same mail again: a new UID in INBOX, a copy in another mailbox, and by SMTP.
        dovecot.append("INBOX", as_delivered(request, tanaka, REQUEST, 2))
        dovecot.append("Shared", as_delivered(request, tanaka, REQUEST, 3))
        code, text = smtp_data(cfg.smtp.port, tanaka, REQUEST, request)
        assert code == 250 and b"duplicate of intake 1" in text, text
        wait_until(lambda: len(intake(app)) == 4 and all_flagged(dovecot, "INBOX", "Shared"),
                   20, "the copies stored and flagged")
        # Sato's approval by SMTP, then the same reply again from the mailbox.
        token_addr = str(ask.message["Reply-To"])
        reply = mail(sato, token_addr, "Re: " + ask.subject, "承認します\n", "<ok-1@example.com>")
        code, text = smtp_data(cfg.smtp.port, sato, token_addr, reply)
        assert code == 250 and b"stored as intake 5" in text, text
        relay.wait_for("suzuki@example.com")  # the next approver is asked
        dovecot.append("INBOX", as_delivered(reply, sato, token_addr, 4))
        wait_until(lambda: len(intake(app)) == 6 and all_flagged(dovecot, "INBOX"), 20,
                   "the reply's copy stored and flagged")
        wait_until(lambda: settled(app), 20, "all work done")
        rows = intake(app)
        assert rows[0] == ("imap", None)  # the copies in whatever order the channels ran
        assert sorted(rows[1:4], key=str) == [("imap", 1), ("imap", 1), ("smtp", 1)]
        assert rows[4:] == [("smtp", None), ("imap", 5)]
        with app.store.transaction() as s:
            assert s.scalar(select(func.count()).select_from(Case)) == 1
        # Acted on once: Sato was never told his second copy came too late.
        assert not [m for m in relay.to(sato) if "受付できません" in m.subject
                    or "Not accepted" in m.subject]
        assert len(relay.to("suzuki@example.com")) == 1
    finally:
        app.stop()
