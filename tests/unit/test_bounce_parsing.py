"""Reading bounces (real Postfix DSNs, a reconstructed Exchange NDR and qmail bounce) and the
signed return paths that name the bounced mail."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.config import MailConfig
from daemon.intake.smtp import accepts
from daemon.outbox.returnpath import ReturnPaths
from daemon.outbox.transport import FileTransport
from daemon.parsing.dsn import BounceReport, parse_bounce
from tests.support import ROOT

DSN = ROOT / "tests" / "data" / "dsn"
ORIGINAL = "<0f1e2d3c4b5a69788796a5b4c3d2e1f0@example.com>"


def parse(raw: bytes, envelope_from: str | None = "") -> BounceReport | None:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return parse_bounce(msg, str(msg.get("Subject", "")), envelope_from)


@pytest.mark.parametrize(("name", "kind", "action", "status", "rcpt", "original", "words"), [
    ("postfix-failed.eml", "dsn", "failed", "5.1.1", "brown@corp.test", ORIGINAL,
     "User unknown in virtual mailbox table"),
    ("postfix-delayed.eml", "dsn", "delayed", "4.3.2", "slow@corp.test",
     "<1a2b3c4d5e6f708192a3b4c5d6e7f809@example.com>", "temporarily unavailable"),
    ("exchange-ndr.eml", "dsn", "failed", "5.1.10", "brown@corp.test", ORIGINAL,
     "RESOLVER.ADR.RecipientNotFound"),
    ("qmail-failed.eml", "text", "failed", "5.1.1", "brown@corp.test", ORIGINAL,
     "no mailbox here by that name"),
])
def test_fixtures(name: str, kind: str, action: str, status: str, rcpt: str, original: str,
                  words: str) -> None:
    report = parse((DSN / name).read_bytes())
    assert report is not None
    assert report.kind == kind
    assert [(r.recipient, r.action, r.status) for r in report.recipients] == \
        [(rcpt, action, status)]
    assert report.original_ids[0] == original  # the returned mail's own Message-ID first
    assert words in report.recipients[0].diagnostic
    assert "\n" not in report.recipients[0].diagnostic


def test_prose_delay_warning_is_a_delay_and_diagnostics_are_sanitised() -> None:
    raw = (b"From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example>\r\n"
           b"To: ringi@example.com\r\nSubject: Warning: message delayed\r\n\r\n"
           b"Your message to <late@corp.test> has not yet been delivered.\r\n"
           b"451 mailbox busy \x1b[31m\x07 will keep trying\r\n")
    report = parse(raw, None)
    assert report is not None and report.recipients[0].action == "delayed"
    assert "\x1b" not in report.recipients[0].diagnostic
    assert "\x07" not in report.recipients[0].diagnostic
    assert report.recipients[0].recipient == "late@corp.test"


@pytest.mark.parametrize("raw", [
    # A read receipt is a multipart/report too, but no bounce.
    b"From: a@corp.test\r\nSubject: Read: x\r\nContent-Type: multipart/report; "
    b"report-type=disposition-notification; boundary=b\r\n\r\n--b\r\nContent-Type: "
    b"message/disposition-notification\r\n\r\nFinal-Recipient: rfc822; a@corp.test\r\n"
    b"Disposition: manual-action/MDN-sent-manually; displayed\r\n--b--\r\n",
    # An out-of-office reply from a person.
    b"From: Kato <kato@example.com>\r\nSubject: Out of office\r\nAuto-Submitted: "
    b"auto-replied\r\n\r\nI am away until Monday.\r\n",
    # A vacation reply comes from <> too, whatever its text says.
    b"From: Kato <kato@example.com>\r\nSubject: Re: [R-2026-000001] Approval needed\r\n"
    b"In-Reply-To: <0f1e2d3c4b5a69788796a5b4c3d2e1f0@example.com>\r\n\r\n"
    b"I am away; mail to kato@example.com could not be delivered to me until Monday.\r\n",
    # A person writing about an undeliverable mail is not a mail server's report.
    b"From: Kato <kato@example.com>\r\nSubject: Undeliverable mail?\r\n\r\n"
    b"My mail to ito@example.com could not be delivered, 550 5.1.1.\r\n",
])
def test_not_bounces(raw: bytes) -> None:
    assert parse(raw, "kato@example.com") is None
    if b"Subject: Undeliverable" not in raw:  # (a robot's wording from <> would be a bounce)
        assert parse(raw, "") is None  # not even from the null sender


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000))
def test_any_bytes_never_raise(raw: bytes) -> None:
    parse(b"From: MAILER-DAEMON@x\r\nContent-Type: multipart/report; "
          b"report-type=delivery-status; boundary=b\r\n\r\n--b\r\n" + raw)


def test_deeply_nested_report_is_bounded() -> None:
    inner = b"Final-Recipient: rfc822; a@corp.test\r\nAction: failed\r\n"
    raw = inner
    for i in range(60):
        raw = (f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n".encode()
               + raw + f"\r\n--b{i}--\r\n".encode())
    parse(b"From: MAILER-DAEMON@x\r\nSubject: Undelivered Mail\r\n" + raw)  # no error, no hang


CFG = MailConfig(request_address="ringi@example.com")


def test_return_path_names_one_mail_and_cannot_be_forged() -> None:
    paths = ReturnPaths(b"k" * 64, CFG)
    address = paths.address(42)
    assert address.startswith("ringi+bounce-42-") and address.endswith("@example.com")
    assert paths.mail_id(address) == 42
    assert paths.mail_id(address.upper()) == 42  # an MTA that folds case still matches
    assert paths.address(43) != address.replace("-42-", "-43-")  # the tag covers the id
    assert paths.mail_id(address.replace("-42-", "-43-")) is None
    assert ReturnPaths(b"x" * 64, CFG).mail_id(address) is None  # another key
    assert paths.mail_id("ringi@example.com") is None
    assert paths.mail_id(address.replace("@example.com", "@evil.example")) is None


def test_listener_accepts_return_paths_by_shape_only() -> None:
    address = ReturnPaths(b"k" * 64, CFG).address(7)
    assert accepts(CFG, address)
    assert accepts(CFG, "ringi+bounce-7-aaaaaaaaaaaaaaaa@example.com")  # MAC checked later
    assert not accepts(CFG, "ringi+bounce-7-aaaa@example.com")
    assert not accepts(CFG, "other+bounce-7-aaaaaaaaaaaaaaaa@example.com")
    assert not accepts(CFG, address.replace("example.com", "evil.example"))


def test_outbox_files_carry_the_return_path(tmp_path: Path) -> None:
    """The embedded default: whatever submits the .eml files learns the envelope sender."""
    path = ReturnPaths(b"k" * 64, CFG).address(5)
    FileTransport(tmp_path).send("smith@example.com", b"Subject: x\r\n\r\nbody\r\n", path)
    (written,) = tmp_path.glob("*.eml")
    head = written.read_bytes().split(b"\r\n")[:2]
    assert head == [b"X-Ringi-Envelope-To: smith@example.com",
                    f"X-Ringi-Envelope-From: {path}".encode()]


def test_message_ids_with_control_bytes_are_not_looked_up() -> None:
    """A NUL or other control byte in a quoted Message-ID must never reach the database
    (PostgreSQL refuses NUL, which would fail the intake item again and again)."""
    raw = (b"From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail\r\n"
           b"In-Reply-To: <a\x00b@example.com>\r\nReferences: <c\x1bd@example.com> <ok@x>\r\n"
           b"\r\n<brown@corp.test>: 550 5.1.1 user unknown\r\n")
    report = parse(raw)
    assert report is not None and report.original_ids == ("<ok@x>",)
