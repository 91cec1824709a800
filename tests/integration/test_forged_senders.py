"""Forged senders, end to end over the real SMTP listener.

Each row of the table is one forgery class, sent as an approval of its own pending case (or
as a request or a command). Every forged mail must change nothing and send nothing to any
address in it; then the *same* mail with a clean From (and a valid Authentication-Results
where the row is about that policy) must be accepted, so each refusal is proved to be caused
by the forgery and not by anything else in the mail.
"""

from __future__ import annotations

import base64
import email.utils
import os
import re
import smtplib
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from daemon.app import App
from daemon.config import Config
from daemon.store.models import Case, CaseStep, InboundMessage, OutboundMail
from tests.imap_server import DovecotServer, dovecot_available
from tests.support import REQUEST, CapturingRelay, free_port, make_config, send, wait_until

TANAKA, SATO, SMITH = "tanaka@example.com", "sato@example.com", "smith@example.com"
EVE = "eve@evil.example"
TRAVEL = ("Type: travel\nDestination: Kobe\nPurpose: {purpose}\nDeparture date: 2026-11-10\n"
          "Return date: 2026-11-10\nAmount: 54,500\n")
MX = "mx.example.com"
PASS = f"{MX}; dmarc=pass header.from=example.com"


def ew(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class Row:
    name: str
    forged: Headers
    clean: Headers
    policy: str = "none"  # mail.sender_auth while the row is sent
    kind: str = "approval"  # an approval of its own pending case, a request or a command


# An approval by Sato, forged in each way a From/Sender can be ambiguous (policy "none").
FROM_ROWS = [
    Row("two addresses", [("From", f"{SATO}, {EVE}")], [("From", SATO)]),
    Row("group", [("From", f"approvers: {SATO}, {EVE};")], [("From", SATO)]),
    Row("unquoted address as name", [("From", f"{SATO} <{EVE}>")],
        [("From", f"Sato <{SATO}>")]),
    Row("quoted address as name", [("From", f'"{SATO}" <{EVE}>')],
        [("From", f'"{SATO}" <{SATO}>')]),
    Row("encoded-word name", [("From", f"{ew(SATO)} <{EVE}>")],
        [("From", f"{ew('佐藤 花子')} <{SATO}>")]),
    Row("fullwidth at in name", [("From", f"{ew(SATO.replace('@', '＠'))} <{EVE}>")],
        [("From", f"{ew('佐藤・経理')} <{SATO}>")]),
    Row("address in a comment", [("From", f"{EVE} ({SATO})")],
        [("From", f"{SATO} (Sato Hanako)")]),
    Row("other address shown as name", [("From", f"{EVE} <{SATO}>")],
        [("From", f"Sato Hanako <{SATO}>")]),
    Row("Sender disagrees", [("From", SATO), ("Sender", EVE)],
        [("From", SATO), ("Sender", f"Sato <{SATO}>")]),
    Row("two From headers", [("From", SATO), ("From", EVE)], [("From", SATO)]),
    Row("unclosed angle bracket", [("From", f"Sato <{SATO}")], [("From", f"Sato <{SATO}>")]),
]

# The same approval under sender_auth = "authentication-results" with a correct From.
def ar_row(name: str, forged: list[str], clean: list[str]) -> Row:
    sato = [("From", f"Sato Hanako <{SATO}>")]
    return Row(name, sato + [("Authentication-Results", v) for v in forged],
               sato + [("Authentication-Results", v) for v in clean], "authentication-results")


POLICIES = ("none", "authentication-results")
AR_ROWS = [
    ar_row("untrusted authserv-id", [PASS.replace(MX, MX + ".evil.example")], [PASS]),
    ar_row("trusted header below an untrusted one", ["relay.evil.example; none", PASS],
           [PASS, "relay.evil.example; none"]),
    ar_row("forged trusted header below the trusted block",
           [f"{MX}; spf=pass smtp.mailfrom=bounce@evil.example",
            "relay.evil.example; spf=pass smtp.mailfrom=evil.example", PASS],
           [PASS, "relay.evil.example; spf=pass smtp.mailfrom=evil.example",
            f"{MX}; dmarc=fail header.from=example.com"]),
    ar_row("trusted fail and trusted pass",
           [f"{MX}; dmarc=fail header.from=example.com", f"{MX}; dkim=pass header.d=example.com"],
           [PASS, f"{MX}; dkim=pass header.d=example.com"]),
    ar_row("aligned dkim fail beside spf pass",
           [f"{MX}; dkim=fail header.d=example.com; spf=pass smtp.mailfrom=x@example.com"],
           [f"{MX}; dkim=fail header.d=esp.example; spf=pass smtp.mailfrom=x@example.com"]),
    ar_row("pass inside a quoted value",
           [f'{MX}; auth=none smtp.auth="x; dmarc=pass header.from=example.com "'],
           [f'{MX}; auth=none smtp.auth="x"; dmarc=pass header.from=example.com']),
    ar_row("pass inside a comment",
           [f"{MX}; spf=none (dmarc=pass header.from=example.com) smtp.mailfrom=evil.example"],
           [f"{MX}; spf=pass (dmarc=none; not needed) smtp.mailfrom=x@example.com"]),
    ar_row("dkim for a look-alike domain", [f"{MX}; dkim=pass header.d=example.com.evil.example"],
           [f"{MX}; dkim=pass header.d=mail.example.com"]),
    ar_row("dkim for a bare top-level domain", [f"{MX}; dkim=pass header.d=com"],
           [f"{MX}; dkim=pass header.d=example.com"]),
]

# A request and a command with a forged From: no case, no answer; clean, both happen.
EXTRA_ROWS = [
    Row("forged request", [("From", f"{TANAKA}, {EVE}")], [("From", TANAKA)], kind="request"),
    Row("forged command", [("From", f'"{SMITH}" <{EVE}>')], [("From", f'"{SMITH}" <{SMITH}>')],
        kind="command"),
]


def compose(headers: Headers, to: str, subject: str, body: str) -> tuple[str, bytes]:
    msg_id = email.utils.make_msgid(domain="test.example")
    lines = [f"{k}: {v}" for k, v in headers]
    lines += [f"To: {to}", f"Subject: {subject}", f"Message-ID: {msg_id}", "MIME-Version: 1.0",
              "Content-Type: text/plain; charset=utf-8", "", body, ""]
    return msg_id, "\r\n".join(lines).encode("utf-8")


def deliver(port: int, raw: bytes, to: str, envelope_from: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(envelope_from, [to], raw)


def outcomes(app: App, count: int) -> dict[str, str]:
    """Wait until `count` mails are stored and processed; Message-ID -> outcome."""
    def done() -> bool:
        with app.store.transaction() as s:
            total = s.scalar(select(func.count()).select_from(InboundMessage))
            waiting = s.scalar(select(func.count()).select_from(InboundMessage)
                               .where(InboundMessage.outcome.is_(None)))
        return total == count and waiting == 0
    wait_until(done, 30, f"{count} processed mails")
    found: dict[str, str] = {}
    with app.store.transaction() as s:
        for raw, outcome in s.execute(select(InboundMessage.raw, InboundMessage.outcome)):
            m = re.search(rb"^Message-ID: (<[^>]+>)", raw, re.M | re.I)
            if m:
                found[m.group(1).decode()] = str(outcome)
    return found


def addresses(headers: Headers) -> set[str]:
    return {a.lower() for _, v in headers for a in re.findall(r"[\w.+-]+@[\w.-]+\w", v)}


def queued_to(app: App, address: str) -> int:
    with app.store.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(OutboundMail)
                            .where(OutboundMail.recipient == address)) or 0)


def states(app: App, numbers: list[str]) -> list[str]:
    """Per case: "approved" once Sato's step is decided (from ¥50,000 Suzuki is asked next,
    so the case stays cheap: no final publication), else the case state."""
    with app.store.transaction() as s:
        cases = {c.id: c for c in s.scalars(select(Case).where(Case.number.in_(numbers)))}
        decided = {step.case_id for step in s.scalars(
            select(CaseStep).where(CaseStep.case_id.in_(cases), CaseStep.state == "approved"))}
        by_number = {c.number: "approved" if i in decided else c.state for i, c in cases.items()}
    return [by_number[n] for n in numbers]


def pending_approvals(app: App, relay: CapturingRelay, count: int,
                      headers: dict[str, str]) -> list[tuple[str, str]]:
    """`count` travel requests by Tanaka, each waiting for Sato: (case number, reply address)."""
    port = app.cfg.smtp.port
    for n in range(count):
        send(port, TANAKA, f"Kobe visit {n}", TRAVEL.format(purpose=f"Visit {n}"), headers=headers)
    requests = relay.wait_for(SATO, count, timeout=60)
    out = []
    for mail in requests:
        number = re.search(r"\[(R-\d{4}-\d{6})\]", mail.subject)
        assert number, mail.subject
        out.append((number.group(1), str(mail.message["Reply-To"])))
    return sorted(out)


def set_policy(app: App, policy: str) -> None:
    """Switch the live daemon's sender policy (the processor reads the same config object):
    one daemon per backend runs both tables, which keeps this test cheap."""
    app.cfg.mail.sender_auth = policy  # type: ignore[assignment]


def send_rows(app: App, rows: list[Row], targets: dict[str, str], variant: str,
              policy: str) -> dict[str, Row]:
    """Send the forged or clean variant of every row of one policy; Message-ID -> row."""
    set_policy(app, policy)
    sent: dict[str, Row] = {}
    for row in (r for r in rows if r.policy == policy):
        headers = row.forged if variant == "forged" else row.clean
        to = targets.get(row.name, REQUEST)
        subject, body = ("Re: approval", "APPROVE\n") if row.kind == "approval" else \
            (("help", "help\n") if row.kind == "command" else
             ("Kobe visit (request row)", TRAVEL.format(purpose="Request row")))
        msg_id, raw = compose(headers, to, subject, body)
        deliver(app.cfg.smtp.port, raw, to, SATO)
        sent[msg_id] = row
    return sent


def stored(app: App) -> int:
    with app.store.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(InboundMessage)) or 0)


def case_count(app: App) -> int:
    with app.store.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(Case)) or 0)


def test_forged_senders_change_nothing(daemon: App, relay: CapturingRelay) -> None:
    rows = FROM_ROWS + AR_ROWS + EXTRA_ROWS
    approvals = [r for r in rows if r.kind == "approval"]
    cases = pending_approvals(daemon, relay, len(approvals), {})
    numbers = [n for n, _ in cases]
    targets = {row.name: reply for row, (_, reply) in zip(approvals, cases, strict=True)}
    assert states(daemon, numbers) == ["in_review"] * len(approvals)
    sato_before = len(relay.to(SATO))
    everyone = {SATO, TANAKA, SMITH, EVE}.union(*(addresses(r.forged) for r in rows))
    queued_before = {address: queued_to(daemon, address) for address in everyone}
    before = stored(daemon)

    forged: dict[str, Row] = {}
    for policy in POLICIES:  # each batch is processed before the policy changes
        forged |= send_rows(daemon, rows, targets, "forged", policy)
        seen = outcomes(daemon, before + len(forged))
    assert len(forged) == len(rows)
    for msg_id, row in forged.items():
        assert seen[msg_id].startswith("refused, not answered: "), (row.name, seen[msg_id])
    assert states(daemon, numbers) == ["in_review"] * len(approvals), "a forged approval counted"
    for address in everyone:  # nobody named in any forged mail was sent anything
        assert queued_to(daemon, address) == queued_before[address], address
    assert relay.to(EVE) == [] and len(relay.to(SATO)) == sato_before
    assert case_count(daemon) == len(approvals)  # the forged request made no case

    # The same mails with a clean sender are accepted: each refusal was the forgery's doing.
    clean: dict[str, Row] = {}
    for policy in POLICIES:
        clean |= send_rows(daemon, rows, targets, "clean", policy)
        seen = outcomes(daemon, before + len(forged) + len(clean))
    for msg_id, row in clean.items():
        assert "refused" not in seen[msg_id] and "ignored" not in seen[msg_id], \
            (row.name, seen[msg_id])
    decided = states(daemon, numbers)
    assert decided == ["approved"] * len(approvals), \
        list(zip([r.name for r in approvals], decided, strict=True))
    relay.wait_for(SATO, sato_before + len(approvals))  # each approval is confirmed to Sato
    relay.wait_for(SMITH)  # the clean command is answered
    assert case_count(daemon) == len(approvals) + 1  # the clean request is a case


@pytest.fixture
def config(tmp_path: Path, db_url: str, relay: CapturingRelay) -> Config:
    """The default policy ("none"), with the border MTA's id known for the A-R rows."""
    return make_config(tmp_path, db_url, relay.port, free_port(),
                       mail={"trusted_authserv_ids": [MX]})


@pytest.mark.skipif(not dovecot_available(), reason="Dovecot is not installed")
def test_forged_senders_over_imap_and_lmtp(tmp_path: Path, relay: CapturingRelay) -> None:
    """The other two channels that read a From share the same check. One backend only: the
    channels differ, the store path is the one the table above runs on both backends."""
    server = DovecotServer(tmp_path / "dovecot")
    server.start()
    password = tmp_path / "imap.password"
    password.write_text(server.password)
    os.chmod(password, 0o600)
    account = {"name": "corp", "host": server.host, "port": server.port, "security": "none",
               "username": server.user, "password_file": str(password), "poll_seconds": 0.2}
    cfg = make_config(tmp_path, f"sqlite:///{tmp_path / 'ringi.db'}", relay.port, free_port(),
                      smtp={"lmtp": True}, imap=[account])
    app = App(cfg)
    app.prepare()
    app.start()
    try:
        def by_imap(sender: str) -> str:
            msg_id, raw = compose([("Return-Path", f"<{TANAKA}>"), ("Delivered-To", REQUEST),
                                   ("From", sender)], REQUEST, "Kobe visit (IMAP)",
                                  TRAVEL.format(purpose="IMAP"))
            server.append("INBOX", raw)
            return msg_id

        def by_lmtp(sender: str) -> str:
            msg_id, raw = compose([("From", sender)], REQUEST, "help", "help\n")
            with smtplib.LMTP("127.0.0.1", cfg.smtp.port) as client:
                client.sendmail(SMITH, [REQUEST], raw)
            return msg_id

        forged = [by_imap(f"{TANAKA}, {EVE}"), by_lmtp(f'"{SMITH}" <{EVE}>')]
        seen = outcomes(app, 2)
        assert all(seen[m].startswith("refused, not answered: ") for m in forged), seen
        assert case_count(app) == 0
        assert all(queued_to(app, a) == 0 for a in (TANAKA, SMITH, EVE))

        clean = [by_imap(TANAKA), by_lmtp(f'"{SMITH}" <{SMITH}>')]
        seen = outcomes(app, 4)
        assert not any("refused" in seen[m] for m in clean), seen
        relay.wait_for(SMITH)
        assert case_count(app) == 1 and queued_to(app, EVE) == 0
    finally:
        app.stop()
        server.stop()
