"""A retried delivery is one delivery: the intake store, then SMTP and LMTP end to end."""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from daemon.app import App
from daemon.clock import FrozenClock
from daemon.config import MailConfig, QueueConfig
from daemon.intake.duplicates import Dedupe
from daemon.intake.store import store_inbound
from daemon.store.db import Store
from daemon.store.models import Case, InboundMessage, WorkItem
from daemon.workqueue.queue import WorkQueue
from tests.support import (
    REQUEST,
    CapturingRelay,
    free_port,
    make_config,
    ringi,
    wait_until,
    write_config,
)

DEDUPE = Dedupe.from_config(MailConfig(request_address=REQUEST))
TRAVEL = ("Type: travel\r\nDestination: Nagoya\r\nPurpose: Audit {n}\r\n"
          "Departure date: 2026-11-10\r\nReturn date: 2026-11-10\r\nAmount: 9800\r\n")


def request_bytes(n: int, sender: str = "tanaka@example.com", msgid: bool = True) -> bytes:
    head = (f"From: {sender}\r\nTo: {REQUEST}\r\nSubject: Nagoya audit {n}\r\n"
            f"Date: Mon, 2 Nov 2026 09:00:00 +0900\r\n")
    if msgid:
        head += f"Message-ID: <trip-{n}@example.com>\r\n"
    return (head + "\r\n" + TRAVEL.format(n=n)).encode()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    st = Store(db_url)
    st.migrate()
    yield st
    st.dispose()


def rows(store: Store) -> list[tuple[int, int | None, str | None]]:
    with store.transaction() as s:
        return [(r.id, r.duplicate_of, r.outcome) for r in
                s.scalars(select(InboundMessage).order_by(InboundMessage.id))]


def queued(store: Store) -> list[int]:
    with store.transaction() as s:
        return sorted(s.scalars(select(WorkItem.ref_id).where(WorkItem.queue == "inbound")))


def test_store_recognises_a_resend_within_the_window(store: Store,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    clock = FrozenClock()
    q = WorkQueue(store, clock, QueueConfig(), "t")
    raw = request_bytes(1)
    first = store_inbound(q, "smtp", "tanaka@example.com", [REQUEST], raw, dedupe=DEDUPE)
    assert first.duplicate_of is None
    clock.advance(timedelta(days=6))
    with caplog.at_level(logging.INFO, logger="daemon.intake.store"):
        again = store_inbound(q, "smtp", "tanaka@example.com", [REQUEST],
                              b"Received: from mx2 by ringi\r\n" + raw, dedupe=DEDUPE)
    assert (again.new, again.duplicate_of) == (True, first.id)
    assert f"is a duplicate of intake {first.id}" in caplog.text
    # A broken client reusing the Message-ID for another mail: a new mail, logged.
    other = raw.replace(b"Amount: 9800", b"Amount: 12000")
    with caplog.at_level(logging.INFO, logger="daemon.intake.store"):
        reused = store_inbound(q, "smtp", "tanaka@example.com", [REQUEST], other,
                               dedupe=DEDUPE)
    assert reused.duplicate_of is None
    assert f"reuses Message-ID <trip-1@example.com> of intake {first.id}" in caplog.text
    # Without a Message-ID the content is the identity.
    bare = request_bytes(2, msgid=False)
    lone = store_inbound(q, "imap", "tanaka@example.com", [REQUEST], bare, dedupe=DEDUPE)
    lone_again = store_inbound(q, "smtp", "tanaka@example.com", [REQUEST], bare,
                               dedupe=DEDUPE)
    assert lone_again.duplicate_of == lone.id
    # After the window the same bytes are a new sending; the next resend is a copy of that.
    clock.advance(timedelta(days=8))
    later = store_inbound(q, "smtp", "tanaka@example.com", [REQUEST], raw, dedupe=DEDUPE)
    assert later.duplicate_of is None
    later_again = store_inbound(q, "smtp", "tanaka@example.com", [REQUEST], raw,
                                dedupe=DEDUPE)
    assert later_again.duplicate_of == later.id
    assert queued(store) == [first.id, reused.id, lone.id, later.id]
    outcome = {i: o for i, _, o in rows(store)}[again.id]
    assert outcome == f"duplicate of intake {first.id}: acknowledged, not acted on again"


def test_concurrent_resends_store_one_original(store: Store) -> None:
    q = WorkQueue(store, FrozenClock(), QueueConfig(), "t")
    raw = request_bytes(3)
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def deliver() -> None:
        start.wait()
        try:
            store_inbound(q, "smtp", "tanaka@example.com", [REQUEST], raw, dedupe=DEDUPE)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    stored = rows(store)
    originals = [i for i, dup, _ in stored if dup is None]
    assert len(stored) == 6 and len(originals) == 1
    assert all(dup == originals[0] for i, dup, _ in stored if i != originals[0])
    assert queued(store) == originals


def test_source_keyed_inputs_are_untouched(store: Store) -> None:
    """Drop folders (no dedupe) keep their per-file identity: a new file is a new input."""
    q = WorkQueue(store, FrozenClock(), QueueConfig(), "t")
    a = store_inbound(q, "drop", "drop:x", [], b"form", source_key="drop:x:1")
    b = store_inbound(q, "drop", "drop:x", [], b"form", source_key="drop:x:2")
    again = store_inbound(q, "drop", "drop:x", [], b"form", source_key="drop:x:1")
    assert a.id != b.id and (again.id, again.new) == (a.id, False)
    assert queued(store) == [a.id, b.id]


# --- end to end: a client that never reads our 250 and sends again ---------------------------


def _reply(sock: socket.socket) -> bytes:
    """One (possibly multi-line) SMTP reply."""
    data = b""
    while not re.search(rb"(^|\r\n)\d{3} [^\r\n]*\r\n$", data):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    return data


def send_without_reading_the_250(app: App, sender: str, raw: bytes) -> None:
    """Everything up to and including the final dot; then wait until the message is stored
    (the server has its 250 ready) and drop the connection without reading it."""
    before = len(rows(app.store))
    with socket.create_connection(("127.0.0.1", app.cfg.smtp.port), timeout=10) as sock:
        _reply(sock)
        for line in (b"LHLO" if app.cfg.smtp.lmtp else b"EHLO") + b" mta.example.com", \
                f"MAIL FROM:<{sender}>".encode(), f"RCPT TO:<{REQUEST}>".encode(), b"DATA":
            sock.sendall(line + b"\r\n")
            assert _reply(sock)[:1] in (b"2", b"3")
        sock.sendall(raw + b".\r\n")
        wait_until(lambda: len(rows(app.store)) > before, 10, "the message stored")
    # closed here: the 250 sits unread in a socket that no longer exists


def resend(app: App, sender: str, raw: bytes) -> tuple[int, bytes]:
    """A new connection with the same message, one more Received line on top (a new hop)."""
    cls = smtplib.LMTP if app.cfg.smtp.lmtp else smtplib.SMTP
    with cls("127.0.0.1", app.cfg.smtp.port, timeout=10) as c:
        c.ehlo_or_helo_if_needed() if not app.cfg.smtp.lmtp else c.ehlo("mta.example.com")
        c.mail(sender)
        c.rcpt(REQUEST)
        return c.data(b"Received: from mx.example.com by ringi.example.com; "
                      b"Mon, 2 Nov 2026 09:10:00 +0900\r\n" + raw)


def settled(app: App) -> bool:
    with app.store.transaction() as s:
        return not s.scalar(select(func.count()).select_from(WorkItem)
                            .where(WorkItem.queue.in_(("inbound", "outbound")),
                                   WorkItem.state.in_(("queued", "running"))))


def count_cases(app: App) -> int:
    with app.store.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(Case)) or 0)


@pytest.mark.parametrize("lmtp", [False, True], ids=["smtp", "lmtp"])
def test_dropped_after_the_dot_and_resent_is_one_case(tmp_path: Path, db_url: str,
                                                      relay: CapturingRelay,
                                                      lmtp: bool) -> None:
    if lmtp and db_url.startswith("postgresql"):
        pytest.skip("LMTP differs from SMTP only in the dialogue; one backend is enough")
    cfg = make_config(tmp_path, db_url, relay.port, free_port(), smtp={"lmtp": lmtp})
    app = App(cfg)
    app.prepare()
    app.start()
    try:
        tanaka = "tanaka@example.com"
        raw = request_bytes(1)
        send_without_reading_the_250(app, tanaka, raw)
        code, text = resend(app, tanaka, raw)
        assert code == 250 and b"duplicate of intake 1" in text, text
        ack = relay.wait_for(tanaka)[0]
        number = re.search(r"R-\d{4}-\d{6}", ack.subject)
        assert number is not None
        relay.wait_for("sato@example.com")
        # A command delivered twice the same way acts once: one cancel, one answer.
        cancel = (f"From: {tanaka}\r\nTo: {REQUEST}\r\nSubject: cancel {number.group(0)}\r\n"
                  f"Message-ID: <cancel-1@example.com>\r\n\r\nplease cancel\r\n").encode()
        send_without_reading_the_250(app, tanaka, cancel)
        code, text = resend(app, tanaka, cancel)
        assert code == 250 and b"duplicate of intake 3" in text, text
        wait_until(lambda: any("cancel" in m.subject for m in relay.to(tanaka)), 20, "cancel")
        wait_until(lambda: settled(app), 20, "all work done")
        assert count_cases(app) == 1
        answers = [m.subject for m in relay.to(tanaka) if "cancel" in m.subject]
        assert len(answers) == 1, answers  # tanaka reads Japanese
        assert answers[0].startswith(f"[{number.group(0)}] cancel 完了: "), answers
        assert [(i, dup) for i, dup, _ in rows(app.store)] == [(1, None), (2, 1), (3, None),
                                                               (4, 3)]
        cfg_file = write_config(cfg, tmp_path)
        status = ringi(cfg_file, "status")
        assert status.exit_code == 0, status.output
        assert "duplicate deliveries in the last 7 days: 2 (latest: intake 4 = intake 3" \
            in status.output
    finally:
        app.stop()
