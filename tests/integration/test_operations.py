"""Operator-facing behaviour: CLI commands, outbox retries, secrets, tokens, directory import."""

from __future__ import annotations

import email
import email.policy
import os
import re
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from daemon.app import App
from daemon.cli.main import cli
from daemon.clock import FrozenClock
from daemon.security.secrets import InsecureSecretError
from daemon.store.models import OutboundMail, Person, ReplyToken, WorkItem
from daemon.workqueue.queue import State
from tests.support import (
    ROOT,
    CapturingRelay,
    free_port,
    make_config,
    reply_to,
    ringi,
    send,
    write_config,
)

TRAVEL = ("Type: travel\nDestination: Sendai\nPurpose: Trade fair\nDeparture date: 2026-11-12\n"
          "Return date: 2026-11-13\nAmount: 51000\n")


def test_case_show_and_status(daemon: App, relay: CapturingRelay, tmp_path: Path) -> None:
    port = daemon.cfg.smtp.port
    send(port, "tanaka@example.com", "Sendai trade fair", TRAVEL)
    request = relay.wait_for("sato@example.com")[0]
    number = re.search(r"R-\d{4}-\d{6}", request.subject).group(0)  # type: ignore[union-attr]
    reply_to(request, port, "sato@example.com", "承認\n良いと思います")
    relay.wait_for("suzuki@example.com")
    cfg_file = write_config(daemon.cfg, tmp_path)
    out = ringi(cfg_file, "case", "show", number)
    assert out.exit_code == 0, out.output
    text = out.output
    assert f"{number}  Sendai trade fair" in text and "state:     in_review" in text
    assert "Amount: 51,000" in text
    # The timeline explains routing: the vacant rank, the threshold condition, who and why.
    assert "nobody in Engineering ranks above Hanako Sato (Chief) up to rank 30 " \
        "(Section Manager vacant); step complete" in text
    assert "condition `case.amount >= 50000` holds (amount='51000')" in text
    assert "phase accounting: condition `has(case.receipts) && case.receipts > 0` does not " \
        "hold" not in text  # not reached yet: the case is still in the line phase
    assert re.search(
        r"decision\s+Hanako Sato \(Chief\), Engineering\s+-> APPROVE\s+reason: 良い", text
    )
    lines = [ln.split()[2] for ln in text.splitlines() if re.match(r"\s+\d{4}-\d\d-\d\d ", ln)]
    assert lines == ["received", "routed", "asked", "decision", "routed", "routed", "routed",
                     "asked"]

    missing = ringi(cfg_file, "case", "show", "R-0000-1")
    assert missing.exit_code == 1 and "no case R-0000-1" in missing.output

    status = ringi(cfg_file, "status")
    assert status.exit_code == 0
    assert re.search(r"inbound\s+queued=\d+\s+running=\d+\s+done=2\s+dead=0", status.output)
    assert "outbound" in status.output


def test_relay_temporary_failure_retries_permanent_is_dead_letter(
    tmp_path: Path, db_url: str, relay: CapturingRelay
) -> None:
    clock = FrozenClock()
    cfg = make_config(tmp_path, db_url, relay.port, free_port(),
                      queue={"backoff_base_seconds": 30, "max_attempts": 3})
    app = App(cfg, clock=clock)
    app.prepare()
    relay.fail_next = ["451 4.3.0 try later", "550 5.1.1 no such user"]
    with app.store.transaction() as s:
        app.notifier.to_address(s, "help", "smith@example.com", "en", {"types": []})
        app.notifier.to_address(s, "help", "brown@example.com", "en", {"types": []})
    runner = app.outbox_runner
    assert runner.drain() == 3  # the two mails, then the administrator's dead-letter alert
    assert [m.to for m in relay.mails] == ["admin@example.com"]
    with app.store.transaction() as s:
        items = {w.ref_id: w for w in s.scalars(select(WorkItem))}
        mails = {m.recipient: m.id for m in s.scalars(select(OutboundMail))}
    first, second = items[mails["smith@example.com"]], items[mails["brown@example.com"]]
    assert first.state == State.QUEUED and first.last_error == "451 4.3.0 try later"
    assert second.state == State.DEAD and "550" in (second.last_error or "")
    assert runner.drain() == 0  # back-off: not due yet
    clock.advance(timedelta(seconds=30))
    assert runner.drain() == 1
    assert [m.to for m in relay.mails] == ["admin@example.com", "smith@example.com"]
    app.stop()


def test_embedded_default_writes_eml_files(tmp_path: Path, db_url: str) -> None:
    cfg = make_config(tmp_path, db_url, None, free_port())
    app = App(cfg)
    app.prepare()
    with app.store.transaction() as s:
        app.notifier.to_address(s, "help", "smith@example.com", "ja", {"types": []})
    assert app.outbox_runner.drain() == 1
    files = list(cfg.outbox_dir.glob("*.eml"))
    assert len(files) == 1
    raw = files[0].read_bytes()
    assert b"X-Ringi-Envelope-To: smith@example.com" in raw
    assert re.search(rb"\r\nSubject: [ -~]*=\?utf-8\?[bq]\?", raw)  # RFC 2047, ASCII on the wire
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "ringi の使い方"
    assert parsed["Auto-Submitted"] == "auto-generated" and parsed["Message-ID"]
    app.stop()


def test_token_key_must_be_private(tmp_path: Path, db_url: str) -> None:
    cfg = make_config(tmp_path, db_url, None, free_port())
    App(cfg).stop()  # first start creates the key
    key = cfg.token_key_path
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    os.chmod(key, 0o644)
    with pytest.raises(InsecureSecretError, match="chmod 600"):
        App(cfg)


def test_tokens_are_stored_hashed_and_expire(tmp_path: Path, db_url: str,
                                             relay: CapturingRelay) -> None:
    clock = FrozenClock()
    cfg = make_config(tmp_path, db_url, relay.port, free_port(), mail={"token_ttl_hours": 24})
    app = App(cfg, clock=clock)
    app.prepare()
    app.start()
    try:
        send(cfg.smtp.port, "smith@example.com", "Trip", TRAVEL)
        request = relay.wait_for("takahashi@example.com")[0]
        token = str(request.message["Reply-To"]).split("+")[1].split("@")[0]
        with app.store.transaction() as s:
            stored = s.scalars(select(ReplyToken.token_hash)).all()
        assert len(stored) == 1 and token not in stored[0] and len(stored[0]) == 64
        clock.advance(timedelta(hours=25))
        reply_to(request, cfg.smtp.port, "takahashi@example.com", "APPROVE")
        # Expired: nothing decided, the approver is told and gets a fresh request.
        mails = relay.wait_for("takahashi@example.com", 3)
        assert any("受付できません" in m.subject and "有効期限" in m.body for m in mails)
        fresh = [m for m in mails if "承認依頼" in m.subject][-1]
        assert fresh.message["Reply-To"] != request.message["Reply-To"]
        assert relay.to("brown@example.com") == []
        reply_to(fresh, cfg.smtp.port, "takahashi@example.com", "APPROVE")
        relay.wait_for("brown@example.com")
    finally:
        app.stop()


def test_directory_import_cli(tmp_path: Path, db_url: str) -> None:
    cfg = make_config(tmp_path, db_url, None, free_port(), directory={"file": None})
    cfg_file = write_config(cfg, tmp_path)
    runner = CliRunner()
    first = runner.invoke(cli, ["--config", str(cfg_file), "directory", "import",
                                str(ROOT / "samples" / "organisation.toml")])
    assert first.exit_code == 0, first.output
    assert "+ person tanaka" in first.output and "+ unit eng" in first.output

    changed = (ROOT / "samples" / "organisation.toml").read_text()
    # A renamed person is renamed in the file's relations too (a relation naming nobody
    # is refused on import).
    changed = changed.replace('id = "sato"', 'id = "sato2"').replace(
        'approver = "sato"', 'approver = "sato2"')
    new = tmp_path / "org.toml"
    new.write_text(changed)
    second = runner.invoke(cli, ["--config", str(cfg_file), "directory", "import", str(new)])
    assert second.exit_code == 0, second.output
    assert "+ person sato2" in second.output and "- person sato" in second.output

    bad = tmp_path / "bad.toml"
    bad.write_text(changed.replace('position = "chief"', 'position = "captain"', 1))
    refused = runner.invoke(cli, ["--config", str(cfg_file), "directory", "import", str(bad)])
    assert refused.exit_code == 1
    assert re.search(r"bad\.toml:\d+: .*captain", refused.output)
    app = App(cfg)
    with app.store.transaction() as s:  # refused whole: the previous import stands
        people = {p.id: p.active for p in s.scalars(select(Person))}
    assert people["sato2"] is True and people["sato"] is False
    app.stop()


def test_mail_goes_to_the_first_listed_address(tmp_path: Path, db_url: str) -> None:
    from daemon.directory.lookup import member_by_email, primary_email

    text = (ROOT / "samples" / "organisation.toml").read_text().replace(
        'emails = ["sato@example.com"]', 'emails = ["zz.sato@example.com", "sato@example.com"]')
    org = tmp_path / "org.toml"
    org.write_text(text)
    cfg = make_config(tmp_path, db_url, None, free_port(), directory={"file": str(org)})
    app = App(cfg)
    app.prepare()
    with app.store.transaction() as s:
        assert primary_email(s, "sato") == "zz.sato@example.com"
        found = member_by_email(s, "SATO@example.com")  # any listed address identifies her
        assert found is not None and found.id == "sato"
    app.stop()


def test_attachments_are_stored_with_sha256(daemon: App, relay: CapturingRelay) -> None:
    import hashlib
    import smtplib
    from email.message import EmailMessage

    from daemon.store.models import Attachment

    pdf = b"%PDF-1.4 receipt " + bytes(range(256)) * 40
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "tanaka@example.com", "ringi@example.com", "Trip"
    msg.set_content(TRAVEL)
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="領収書.pdf")
    with smtplib.SMTP("127.0.0.1", daemon.cfg.smtp.port) as c:
        c.send_message(msg)
    request = relay.wait_for("sato@example.com")[0]
    digest = hashlib.sha256(pdf).hexdigest()
    assert "領収書.pdf" in request.body and digest[:16] in request.body
    with daemon.store.transaction() as s:
        (att,) = s.scalars(select(Attachment)).all()
    assert (att.filename, att.size, att.sha256) == ("領収書.pdf", len(pdf), digest)
    stored = daemon.cfg.blobs_dir / digest[:2] / digest
    assert stored.read_bytes() == pdf


def test_lmtp_mode(tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    import smtplib

    cfg = make_config(tmp_path, db_url, relay.port, free_port(), smtp={"lmtp": True})
    app = App(cfg)
    app.prepare()
    app.start()
    try:
        with smtplib.LMTP("127.0.0.1", cfg.smtp.port) as c:
            refused = c.sendmail("smith@example.com", ["ringi@example.com", "x@example.com"],
                                 b"From: smith@example.com\r\nSubject: help\r\n\r\nhelp\r\n")
        assert list(refused) == ["x@example.com"]
        assert "new TYPE" in relay.wait_for("smith@example.com")[0].body
    finally:
        app.stop()


def test_answers_are_rate_limited_per_sender(tmp_path: Path, db_url: str) -> None:
    clock = FrozenClock()
    cfg = make_config(tmp_path, db_url, None, free_port(), mail={"error_replies_per_hour": 3})
    app = App(cfg, clock=clock)
    app.prepare()
    with app.store.transaction() as s:
        sent = [app.notifier.to_address(s, "help", "loop@example.org", "en", {"types": []})
                for _ in range(5)]
        other = app.notifier.to_address(s, "help", "someone@example.org", "en", {"types": []})
    assert sent == [True, True, True, False, False] and other
    clock.advance(timedelta(minutes=61))
    with app.store.transaction() as s:
        assert app.notifier.to_address(s, "help", "loop@example.org", "en", {"types": []})
    app.stop()


def test_directory_dry_run_changes_nothing(tmp_path: Path, db_url: str) -> None:
    cfg = make_config(tmp_path, db_url, None, free_port())
    App(cfg).prepare()
    changed = (ROOT / "samples" / "organisation.toml").read_text().replace(
        'id = "brown"', 'id = "green"').replace('person = "brown"', 'person = "green"')
    new = tmp_path / "org.toml"
    new.write_text(changed)
    out = ringi(write_config(cfg, tmp_path), "directory", "import", "--dry-run", str(new))
    assert out.exit_code == 0, out.output
    assert "+ person green" in out.output and "- person brown" in out.output
    app = App(cfg)
    with app.store.transaction() as s:
        people = {p.id: p.active for p in s.scalars(select(Person))}
    assert people["brown"] is True and "green" not in people
    app.stop()


@pytest.mark.parametrize("problem", ["missing-directory", "missing-template", "port-in-use"])
def test_run_refuses_to_start_with_a_clear_reason(tmp_path: Path, db_url: str,
                                                   problem: str) -> None:
    import shutil
    import socket

    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "mailtemplates", templates)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = free_port()
    cfg = make_config(tmp_path, db_url, None, port, paths={"templates": str(templates)})
    expected = ""
    if problem == "missing-directory":
        cfg.directory.file = tmp_path / "nowhere.toml"
        expected = "nowhere.toml: cannot read file"
    elif problem == "missing-template":
        (templates / "ja" / "rejected.txt").unlink()
        expected = "ja/rejected.txt is missing"
    else:
        cfg.smtp.port = blocker.getsockname()[1]
        expected = "cannot listen on 127.0.0.1"
    result = ringi(write_config(cfg, tmp_path), "run")
    blocker.close()
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
