"""No silent dead letters: hostile subjects and names still make a case and deliver its mail;
a mail no relay can take fails once, on the case's record, with the administrator told; any
dead item is one mail to the administrator with a `ringi queue retry` command that works."""

from __future__ import annotations

import os
import re
import shlex
import smtplib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from daemon.app import App
from daemon.cli.main import cli
from daemon.clock import FrozenClock
from daemon.config import QueueConfig
from daemon.directory.lookup import member
from daemon.store.db import Store
from daemon.store.models import (
    AdminAlert,
    Case,
    CaseEvent,
    InboundMessage,
    OutboundMail,
    Person,
    PersonEmail,
    WorkItem,
)
from daemon.workqueue.queue import DeadLetter, State, WorkQueue
from tests.support import (
    REQUEST,
    CapturingRelay,
    free_port,
    make_config,
    ringi,
    wait_until,
    write_config,
)

TRAVEL = ("Type: travel\nDestination: Sendai\nPurpose: Trade fair\nDeparture date: 2026-11-12\n"
          "Return date: 2026-11-13\nAmount: 12000\n")
ADMIN = "admin@example.com"
SNEAKY = "=?utf-8?q?a=0D=0ABcc:_evil@evil.example?="  # decodes to a header line if re-read


def send_raw(port: int, sender: str, subject: bytes, body: str = TRAVEL) -> None:
    """A request whose Subject bytes are exactly `subject` (already folded/encoded)."""
    raw = (b"From: " + sender.encode() + b"\r\nTo: " + REQUEST.encode() + b"\r\nSubject: "
           + subject + b"\r\nMessage-ID: <" + os.urandom(6).hex().encode()
           + b"@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8"
           + b"\r\n\r\n" + body.replace("\n", "\r\n").encode())
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(sender, [REQUEST], raw)


def q_word(text: str) -> str:
    """One RFC 2047 Q encoded word carrying `text` byte for byte (UTF-8)."""
    return "=?utf-8?q?" + "".join(f"={b:02X}" for b in text.encode("utf-8")) + "?="


# (raw Subject header, the title the case must get)
HOSTILE = [
    (b"=?utf-7?q?+2D8-?= laptop", "\ufffd laptop"),  # a lone surrogate from a bad charset
    (q_word("Tr\x00ip\x07 to\x1b[31m Osaka\x85!").encode(), "Trip to[31m Osaka !"),
    (q_word("Invoice \u202efdp.exe\u2066").encode(), "Invoice fdp.exe"),  # bidi override
    (q_word("line\u2028break\r\nBcc: x@evil.example").encode(), "line break Bcc: x@evil.example"),
    (q_word(SNEAKY).encode(), SNEAKY),  # an encoded-word look-alike stays literal text
    (b"\r\n ".join([b"=?utf-8?q?=E6=97=A5?="] * 3000), "日" * 199 + "\u2026"),  # 3000 words
    (b"\r\n ".join([b"word"] * 2000), ("word " * 40)[:199].rstrip() + "\u2026"),
]


def _cases(app: App) -> list[Case]:
    with app.store.transaction() as s:
        return list(s.scalars(select(Case).order_by(Case.id)))


def _items(app: App, state: str) -> list[WorkItem]:
    with app.store.transaction() as s:
        return list(s.scalars(select(WorkItem).where(WorkItem.state == state)))


def test_hostile_subjects_and_names_make_cases_and_deliver(daemon: App,
                                                         relay: CapturingRelay) -> None:
    # The approver's directory name carries the same tricks: control, bidi, a look-alike.
    with daemon.store.transaction() as s:
        hostile = f"Hanako \u202eSato\x07 {SNEAKY}"
        s.execute(update(Person).where(Person.id == "sato").values(name=hostile,
                                                                     name_ja=hostile))
    port = daemon.cfg.smtp.port
    for subject, _ in HOSTILE:
        send_raw(port, "tanaka@example.com", subject)
    wait_until(lambda: len(_cases(daemon)) == len(HOSTILE), what="a case per request")
    assert [c.title for c in _cases(daemon)] == [title for _, title in HOSTILE]
    asked = relay.wait_for("sato@example.com", len(HOSTILE))
    relay.wait_for("tanaka@example.com", len(HOSTILE))  # every requester's acknowledgement
    for mail in asked:
        assert mail.message["Bcc"] is None and len(mail.rcpt) == 1
        # The display name reads as the directory has it, minus what cannot be shown
        # (compared without spaces: Python's address parser keeps the folding space
        # between two encoded words, which RFC 2047 readers drop).
        to = mail.message["To"]
        assert [a.addr_spec for a in to.addresses] == ["sato@example.com"]
        assert "".join(to.addresses[0].display_name.split()) == \
            "HanakoSato=\u2060?utf-8?q?a=0D=0ABcc:_evil@evil.example?="
    by_number = {m.subject.split("]")[0]: m.subject for m in asked}
    sneaky = next(c for c in _cases(daemon) if c.title == SNEAKY)
    # The look-alike arrives as the literal text (a word joiner keeps "=?" from decoding);
    # the subject shortens the title to fit a phone, the body has it whole.
    literal = SNEAKY.replace("=?", "=\u2060?")
    assert by_number[f"[{sneaky.number}"].split(" / ")[-1].startswith(literal[:12])
    assert any(SNEAKY in m.body for m in asked if sneaky.number in m.subject)
    assert _items(daemon, State.DEAD) == []
    assert relay.to(ADMIN) == []


def _set_email(app: App, person: str, address: str) -> None:
    with app.store.transaction() as s:
        s.execute(update(PersonEmail).where(PersonEmail.person_id == person)
                  .values(email=address))


def _show(cfg_file: Path, number: str) -> str:
    out = ringi(cfg_file, "case", "show", number)
    assert out.exit_code == 0, out.output
    return out.output


@pytest.fixture
def ascii_relay() -> Iterator[CapturingRelay]:
    """A relay whose EHLO offers no SMTPUTF8 (aiosmtpd's controller offers it by default)."""
    server = CapturingRelay()
    server.controller = Controller(server, hostname="127.0.0.1", port=server.port,
                                   enable_SMTPUTF8=False)
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("why", ["non-ascii", "refused"])
def test_undeliverable_mail_fails_once_on_the_case_and_tells_the_admin(
        tmp_path: Path, db_url: str, ascii_relay: CapturingRelay, why: str) -> None:
    relay = ascii_relay
    cfg = make_config(tmp_path, db_url, relay.port, free_port())
    daemon = App(cfg)
    daemon.prepare()
    daemon.start()
    try:
        if why == "non-ascii":
            _set_email(daemon, "sato", "satō@example.com")
            expect = "does not offer SMTPUTF8"
        else:
            relay.refuse["sato@example.com"] = ["550 5.1.1 <sato@example.com>: no such user"] * 9
            expect = "550 5.1.1"
        send_raw(cfg.smtp.port, "tanaka@example.com", b"Sendai trade fair")
        # Sato cannot be reached, and has no proxy: the administrator is asked at once
        # (tests/integration/test_bounces_unreachable.py), and told of the dead letter.
        [alert] = [m for m in relay.wait_for(ADMIN, 2) if "Dead letter" in m.subject]
        case = _cases(daemon)[0]
        with daemon.store.transaction() as s:
            mail = s.scalars(select(OutboundMail).where(
                OutboundMail.template == "approval_request",
                OutboundMail.failed_at.is_not(None))).one()
            item = s.scalars(select(WorkItem).where(WorkItem.ref_id == mail.id,
                                                    WorkItem.queue == "outbound")).one()
            events = list(s.scalars(select(CaseEvent).where(CaseEvent.kind == "mail failed")))
        assert item.state == State.DEAD and item.attempts == 1  # no retries
        assert mail.failed_at is not None and expect in (mail.error or "")
        assert len(events) == 1 and events[0].case_id == case.id
        assert alert.subject == (f"[ringi] Dead letter: approval request mail to "
                                 f"{mail.recipient} for case {case.number}")
        assert expect in alert.body and f"ringi queue retry {item.id}" in alert.body
        cfg_file = write_config(cfg, tmp_path)
        text = _show(cfg_file, case.number)
        assert re.search(r"mail failed\s.*approval request mail to .*was not delivered: .*"
                         + re.escape(expect), text), text
        relay.wait_for("tanaka@example.com")  # the rest of the case's mail still goes out
        assert len(relay.to(ADMIN)) == 2
    finally:
        daemon.stop()


def test_non_ascii_local_part_goes_out_where_the_relay_offers_smtputf8(
        daemon: App, relay: CapturingRelay) -> None:
    _set_email(daemon, "sato", "satō@example.com")
    send_raw(daemon.cfg.smtp.port, "tanaka@example.com", b"Sendai trade fair")
    [mail] = relay.wait_for("satō@example.com")
    # Raw UTF-8 on the wire (RFC 6532), which the relay's 8-bit parse keeps as escapes.
    [to] = mail.message["To"].addresses
    assert to.addr_spec.encode("utf-8", "surrogateescape") == "satō@example.com".encode()
    assert _items(daemon, State.DEAD) == []


def test_an_undeliverable_alert_is_not_alerted_again(daemon: App,
                                                    relay: CapturingRelay) -> None:
    relay.refuse["tanaka@example.com"] = ["550 5.1.1 no such user"] * 9
    relay.refuse[ADMIN] = ["550 5.1.1 no such user"] * 9
    send_raw(daemon.cfg.smtp.port, "tanaka@example.com", b"Sendai trade fair")
    wait_until(lambda: len(_items(daemon, State.DEAD)) == 2, what="two dead mails")
    relay.wait_for("sato@example.com")
    with daemon.store.transaction() as s:
        dead = [s.get(OutboundMail, w.ref_id) for w in _items(daemon, State.DEAD)]
        alerts = list(s.scalars(select(OutboundMail).where(
            OutboundMail.template == "admin_alert")))
    assert sorted(m.template for m in dead if m) == ["ack", "admin_alert"]
    assert len(alerts) == 1  # the dead alert made no alert of its own
    assert len(_items(daemon, State.DEAD)) == 2


def test_dead_inbound_item_one_mail_with_a_working_retry_command(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    clock = FrozenClock()
    cfg = make_config(tmp_path, db_url, relay.port, free_port(),
                      queue={"runners": False, "max_attempts": 2})
    cfg_file = write_config(cfg, tmp_path)
    app = App(cfg, clock=clock)
    app.prepare()
    app.start()  # the listener stores and queues; the test runs each runner by hand
    try:
        send_raw(cfg.smtp.port, "tanaka@example.com", b"Sendai trade fair")
        with app.store.transaction() as s:  # a stored intake the code cannot process
            row = s.scalars(select(InboundMessage)).one()
            good, row.envelope_to = row.envelope_to, ["not", "a", "mapping"]
        for _ in range(cfg.queue.max_attempts):
            assert app.inbound_runner.drain() == 1
            clock.advance(timedelta(seconds=5))
        [dead] = _items(app, State.DEAD)
        assert dead.queue == "inbound" and dead.attempts == 2
        assert app.outbox_runner.drain() == 1
        [alert] = relay.to(ADMIN)
        assert alert.subject == \
            f"[ringi] Dead letter: intake {row.id} (smtp) from tanaka@example.com"
        assert "AttributeError" in alert.body and "failed 2 time(s)" in alert.body
        command = re.search(r"^\s+(ringi queue retry \d+)$", alert.body, re.M)
        assert command is not None and command.group(1) == f"ringi queue retry {dead.id}"
        with app.store.transaction() as s:  # the cause is fixed ...
            fixed = s.get(InboundMessage, row.id)
            assert fixed is not None
            fixed.envelope_to = good
        # ... and the administrator runs the command from the mail, verbatim (the `ringi`
        # entry point is daemon.cli.main:main; the configuration comes from RINGI_CONFIG).
        program, *args = shlex.split(command.group(1))
        assert program == "ringi"
        done = CliRunner().invoke(cli, args, env={"RINGI_CONFIG": str(cfg_file)})
        assert done.exit_code == 0, done.output
        assert done.output.strip() == f"item {dead.id} queued again"
        clock.set(datetime.now(UTC) + timedelta(seconds=1))  # the CLI ran on the real clock
        assert app.inbound_runner.drain() == 1
        assert [c.title for c in _cases(app)] == ["Sendai trade fair"]
        assert _items(app, State.DEAD) == []
        assert len(relay.to(ADMIN)) == 1
    finally:
        app.stop()


def test_a_failing_dead_letter_hook_never_keeps_an_item_alive(db_url: str) -> None:
    store = Store(db_url)
    store.migrate()
    try:
        q = WorkQueue(store, FrozenClock(), QueueConfig(max_attempts=1), "t")
        with store.transaction() as s:
            q.enqueue(s, "inbound", 1)
            q.enqueue(s, "inbound", 2)
        told: list[DeadLetter] = []

        def tell(s: Session, letter: DeadLetter) -> None:
            told.append(letter)
            s.add(AdminAlert(key=f"k{letter.ref_id}", first_at=q.clock.now(),
                             last_sent_at=q.clock.now(), suppressed=0))
            if letter.ref_id == 2:
                raise RuntimeError("the alert could not be queued")

        for error in ("boom", "bang"):
            item = q.claim("inbound")
            assert item is not None
            assert q.fail(item, error, on_dead=tell) == State.DEAD  # attempts used up
        assert [(t.ref_id, t.error, t.permanent, t.attempts) for t in told] == \
            [(1, "boom", False, 1), (2, "bang", False, 1)]
        with store.transaction() as s:
            assert [w.state for w in s.scalars(select(WorkItem))] == [State.DEAD] * 2
            # The hook's writes share the item's transaction; a failed hook's are undone.
            assert [a.key for a in s.scalars(select(AdminAlert))] == ["k1"]
    finally:
        store.dispose()


def test_undeliverable_answers_to_strangers_are_one_alert_a_day(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    clock = FrozenClock()
    app = App(make_config(tmp_path, db_url, relay.port, free_port()), clock=clock)
    app.prepare()
    try:
        strangers = [f"nobody{i}@elsewhere.example" for i in range(3)]
        for address in strangers:
            relay.refuse[address] = ["550 5.1.1 no such user"]
            with app.store.transaction() as s:
                app.notifier.to_address(s, "unknown_sender", address, "en",
                                        {"subject": "hi", "types": [], "address": address})
        assert app.outbox_runner.drain() == 4  # three answers die, one alert goes out
        [alert] = relay.to(ADMIN)
        assert "unknown sender mail to nobody0@elsewhere.example" in alert.subject
        assert len(_items(app, State.DEAD)) == 3
    finally:
        app.stop()


def test_drop_form_titles_are_cleaned_like_subjects(tmp_path: Path, db_url: str) -> None:
    app = App(make_config(tmp_path, db_url, None, free_port()))
    app.prepare()
    try:
        form = ('{"type": "travel", "title": "\\u202eTrip to\\u2028 Kobe\\n\\n'
                + "x" * 300 + '", "destination": "Kobe", "purpose": "Fair", '
                '"departure date": "2026-11-12", "return date": "2026-11-13", '
                '"amount": "12000"}')
        with app.store.transaction() as s:
            tanaka = member(s, "tanaka")
            assert tanaka is not None
            checked = app.drops.check(s, tanaka, form.encode(), ".json", "form.json")
        assert checked.title == ("Trip to Kobe " + "x" * 300)[:199] + "\u2026"
    finally:
        app.stop()


def test_an_item_interrupted_on_every_attempt_goes_dead_at_restart(db_url: str) -> None:
    """An item that stops the process each time it runs must not run forever."""
    store = Store(db_url)
    store.migrate()
    try:
        q = WorkQueue(store, FrozenClock(), QueueConfig(max_attempts=2), "instance-a")
        with store.transaction() as s:
            q.enqueue(s, "inbound", 7)
        told: list[DeadLetter] = []
        for restart in range(2):
            assert q.claim("inbound") is not None  # ... and the process dies while running it
            requeued = q.reclaim(at_start=True, on_dead=lambda _s, d: told.append(d))
            assert requeued == (1 if restart == 0 else 0)
        with store.transaction() as s:
            [row] = s.scalars(select(WorkItem))
        assert row.state == State.DEAD and "interrupted on each of its 2" in (row.last_error
                                                                              or "")
        assert [(d.ref_id, d.attempts) for d in told] == [(7, 2)]
        assert q.claim("inbound") is None
    finally:
        store.dispose()
