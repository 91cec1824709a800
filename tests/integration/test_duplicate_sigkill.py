"""SIGKILL the real daemon during a burst of requests and approval replies.

The client behaves like an MTA: it sends the same bytes again until it has read a 250, and
now and then drops the connection after the final dot without reading the answer (the lost
250). At the end every request is exactly one case and every reply was acted on once.
"""

from __future__ import annotations

import re
import smtplib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from select import select as wait_readable
from typing import Any

from sqlalchemy import ColumnElement, func, select

from daemon.store.db import Store
from daemon.store.models import Case, CaseEvent, InboundMessage, WorkItem
from tests.integration.test_crash_recovery import DaemonProcess
from tests.support import REQUEST, CapturingRelay, free_port, make_config, wait_until, write_config

TANAKA, SATO, SUZUKI = "tanaka@example.com", "sato@example.com", "suzuki@example.com"
REQUESTS = 9
MAIL_QUEUES = ("inbound", "outbound")  # the mail work this test waits for
TRAVEL = ("Type: travel\nDestination: Nagoya\nPurpose: Audit {n}\nDeparture date: 2026-11-10\n"
          "Return date: 2026-11-10\nAmount: 9800\n")


def mail(sender: str, to: str, subject: str, body: str, msgid: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = sender, to, subject, msgid
    msg.set_content(body)
    return msg.as_bytes().replace(b"\n", b"\r\n")


@dataclass
class Outgoing:
    sender: str
    rcpt: str
    raw: bytes
    attempts: int = 0


@dataclass
class ResendingMta:
    """Delivers every queued mail until a 250 is read, with the same bytes each time."""

    port: int
    pending: list[Outgoing] = field(default_factory=list)
    done: list[Outgoing] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    dropped: int = 0  # attempts that never read the answer to their final dot
    answered_tokens: set[str] = field(default_factory=set)

    def submit(self, out: Outgoing) -> None:
        with self.lock:
            self.pending.append(out)

    def pump(self) -> None:
        with self.lock:
            batch = list(self.pending)
        for out in batch:
            out.attempts += 1
            if self.attempt(out):
                with self.lock:
                    self.pending.remove(out)
                    self.done.append(out)

    def attempt(self, out: Outgoing) -> bool:
        try:
            if out.attempts % 3 == 1:  # every third try: the 250 is lost on the way back
                self.drop_after_dot(out)
                return False
            with smtplib.SMTP("127.0.0.1", self.port, timeout=5) as c:
                c.ehlo()
                c.mail(out.sender)
                c.rcpt(out.rcpt)
                code, _ = c.data(out.raw)
            return code == 250
        except (OSError, smtplib.SMTPException):
            return False  # refused, reset or timed out: try again later

    def drop_after_dot(self, out: Outgoing) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            for line in (b"", b"EHLO mta.example.com", f"MAIL FROM:<{out.sender}>".encode(),
                         f"RCPT TO:<{out.rcpt}>".encode(), b"DATA"):
                if line:
                    sock.sendall(line + b"\r\n")
                reply = b""
                while not re.search(rb"(^|\n)\d{3} [^\n]*\n$", reply):
                    chunk = sock.recv(4096)
                    if not chunk:
                        raise ConnectionError("closed")
                    reply += chunk
            sock.sendall(out.raw + b".\r\n")
            wait_readable([sock], [], [], 3)  # the answer is there (or not): never read
            self.dropped += 1

    def answer_asks(self, relay: CapturingRelay) -> None:
        """Sato approves each request once, however often ringi mailed it to him."""
        for ask in relay.to(SATO):
            reply_to = str(ask.message.get("Reply-To", ""))
            token = reply_to.partition("+")[2].partition("@")[0]
            if not token or token in self.answered_tokens:
                continue
            self.answered_tokens.add(token)
            self.submit(Outgoing(SATO, reply_to, mail(
                SATO, reply_to, "Re: " + ask.subject, "承認します\n\n> " + ask.subject + "\n",
                f"<approve-{token}@example.com>")))


def count(store: Store, model: Any, *where: ColumnElement[bool]) -> int:
    try:
        with store.transaction() as s:
            return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)
    except Exception:
        return 0  # not migrated yet (the first start)


def test_sigkill_during_a_burst_of_requests_and_replies(tmp_path: Path, db_url: str,
                                                        relay: CapturingRelay) -> None:
    port = free_port()
    cfg = make_config(tmp_path, db_url, relay.port, port)
    cfg_file = write_config(cfg, tmp_path)
    daemon = DaemonProcess(cfg_file, port, tmp_path / "daemon.log")
    store = Store(db_url)
    mta = ResendingMta(port)
    for n in range(REQUESTS):
        mta.submit(Outgoing(TANAKA, REQUEST, mail(TANAKA, REQUEST, f"Audit {n}",
                                                  TRAVEL.format(n=n), f"<audit-{n}@example.com>")))
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            mta.answer_asks(relay)
            mta.pump()
            stop.wait(0.05)

    daemon.start()
    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    try:
        # Kill while requests are stored, while they become cases, while replies decide.
        moments: list[tuple[str, Callable[[], bool]]] = [
            ("3 mails stored", lambda: count(store, InboundMessage) >= 3),
            ("3 cases opened", lambda: count(store, Case) >= 3),
            ("2 decisions", lambda: count(store, CaseEvent, CaseEvent.kind == "decision") >= 2),
        ]
        for what, moment in moments:
            wait_until(moment, 40, what)
            daemon.kill()
            time.sleep(0.2)  # the client meets a closed port meanwhile
            daemon.start()

        def finished() -> bool:
            return (not mta.pending and len(mta.answered_tokens) >= REQUESTS
                    and count(store, CaseEvent, CaseEvent.kind == "decision") >= REQUESTS
                    and count(store, WorkItem, WorkItem.queue.in_(MAIL_QUEUES),
                             WorkItem.state.in_(("queued", "running"))) == 0)

        wait_until(finished, 60, "every request answered and every reply processed")
        stop.set()
        thread.join(10)
        with store.transaction() as s:
            titles = sorted(s.scalars(select(Case.title)))
            decisions = s.execute(select(CaseEvent.case_id, CaseEvent.actor_id)
                                  .where(CaseEvent.kind == "decision")).all()
            dups = s.scalar(select(func.count()).select_from(InboundMessage)
                            .where(InboundMessage.duplicate_of.is_not(None)))
        # Zero lost, zero duplicated: every request is exactly one case.
        assert titles == sorted(f"Audit {n}" for n in range(REQUESTS))
        # Every reply acted on once: one decision per case, Sato's, and no "too late" answer.
        assert sorted(c for c, _ in decisions) == sorted({c for c, _ in decisions})
        assert len(decisions) == REQUESTS and {a for _, a in decisions} == {"sato"}
        assert not [m for m in relay.to(SATO) if "受付できません" in m.subject
                    or "Not accepted" in m.subject]
        assert mta.dropped > 0 and dups and dups > 0  # lost 250s were resent and recognised
    finally:
        stop.set()
        daemon.terminate()
        store.dispose()
