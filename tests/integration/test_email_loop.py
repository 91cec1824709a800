"""The first complete loop over real SMTP: request, routing up the ranks, reply decisions."""

from __future__ import annotations

import re
import smtplib
from pathlib import Path

import pytest
from sqlalchemy import func, select

from daemon.app import App
from daemon.store.models import Case, CaseEvent, CaseStep, ReplyToken
from tests.support import REQUEST, CapturingRelay, free_port, make_config, reply_to, send

TANAKA, SATO, SUZUKI = "tanaka@example.com", "sato@example.com", "suzuki@example.com"
SMITH, TAKAHASHI, BROWN = "smith@example.com", "takahashi@example.com", "brown@example.com"

TRAVEL = """Type: travel
Destination: Osaka
Purpose: Customer visit
Departure date: 2026-11-10
Return date: 2026-11-11
Amount: 54,500
"""


def number_in(subject: str) -> str:
    m = re.search(r"\[(R-\d{4}-\d{6})\]", subject)
    assert m, subject
    return m.group(1)


def case_row(app: App, number: str) -> Case:
    with app.store.transaction() as s:
        case = s.scalar(select(Case).where(Case.number == number))
        assert case is not None
        return case


def test_request_routed_up_the_ranks_and_approved(daemon: App, relay: CapturingRelay) -> None:
    port = daemon.cfg.smtp.port
    send(port, TANAKA, "Osaka customer visit", TRAVEL)

    ack = relay.wait_for(TANAKA)[0]
    number = number_in(ack.subject)
    assert "受付" in ack.subject  # tanaka's locale is Japanese
    assert number in ack.body and "Osaka" in ack.body
    assert ack.message["Auto-Submitted"] == "auto-generated"

    # Next rank above staff in Engineering is the chief, Sato.
    request = relay.wait_for(SATO)[0]
    assert number in request.subject and "承認依頼" in request.subject
    reply_addr = str(request.message["Reply-To"])
    assert re.fullmatch(r"ringi\+[a-z2-7]{32}@example\.com", reply_addr)
    assert reply_addr.split("+")[1].split("@")[0] in request.subject
    assert request.message["In-Reply-To"] == f"<case.{number}@example.com>"
    assert ack.message["References"].split()[-1] == f"<case.{number}@example.com>"

    reply_to(request, port, SATO, "承認します")
    # Section manager is vacant in Engineering; from ¥50,000 the travel workflow adds the
    # Department Manager: the request goes on to Suzuki.
    to_suzuki = relay.wait_for(SUZUKI)[0]
    assert number in to_suzuki.subject
    assert "佐藤" in to_suzuki.body  # the request lists who has already approved
    progress = relay.wait_for(TANAKA, 2)[1]
    assert "鈴木" in progress.body
    confirm = relay.wait_for(SATO, 2)[1]
    assert "承認" in confirm.subject

    # Somebody else answering Suzuki's request changes nothing and is told why.
    reply_to(to_suzuki, port, SMITH, "APPROVE")
    err = relay.wait_for(SMITH)[0]
    assert "Not accepted" in err.subject and "only that person can decide" in err.body
    assert case_row(daemon, number).state == "in_review"

    reply_to(to_suzuki, port, SUZUKI, "承認")
    final = relay.wait_for(TANAKA, 3)[2]
    assert "承認されました" in final.subject and number in final.subject
    case = case_row(daemon, number)
    assert case.state == "approved"
    assert case.fields["amount"] == "54500"

    # Reusing a token after the case moved on: a clear error naming who decided and when.
    reply_to(request, port, SATO, "承認")
    again = relay.wait_for(SATO, 3)[2]
    assert "受付できません" in again.subject
    assert "佐藤" in again.body and "承認済み" in again.body

    with daemon.store.transaction() as s:
        steps = s.scalars(select(CaseStep).where(CaseStep.case_id == case.id)
                          .order_by(CaseStep.seq)).all()
        assert [(st.approver_id, st.state) for st in steps] == [
            ("sato", "approved"), ("suzuki", "approved")]
        decisions = s.scalars(select(CaseEvent).where(CaseEvent.decision.is_not(None))
                              .order_by(CaseEvent.id)).all()
        # History keeps each actor's attributes as they were when they acted.
        assert [(e.actor["id"], e.actor["position"], e.actor["unit"]) for e in decisions] == [
            ("sato", "chief", "eng"), ("suzuki", "department_manager", "eng")]
        assert s.scalar(select(func.count()).select_from(ReplyToken)
                        .where(ReplyToken.used_at.is_not(None))) == 2


def test_reject_returns_to_requester_with_reason(daemon: App, relay: CapturingRelay) -> None:
    port = daemon.cfg.smtp.port
    send(port, SMITH, "New laptop", """Type: purchase
Item: Laptop
Supplier: ACME
Quantity: 1
Amount: 180000
Category: equipment
""")
    number = number_in(relay.wait_for(SMITH)[0].subject)
    request = relay.wait_for(TAKAHASHI)[0]
    reply_to(request, port, TAKAHASHI, "却下：予算超過のため\n来期に再申請してください")
    rejected = relay.wait_for(SMITH, 2)[1]
    assert "Rejected" in rejected.subject and number in rejected.subject
    assert "予算超過のため" in rejected.body and "来期に再申請してください" in rejected.body
    assert case_row(daemon, number).state == "rejected"
    assert relay.to(BROWN) == []  # nobody further up was asked


def test_quoted_original_is_not_read_as_the_decision(daemon: App, relay: CapturingRelay) -> None:
    port = daemon.cfg.smtp.port
    send(port, SMITH, "Monitor", "Type: purchase\nItem: Monitor\nSupplier: ACME\nQuantity: 2\n"
         "Amount: 60000\nCategory: equipment\n")
    request = relay.wait_for(TAKAHASHI)[0]
    # The quoted approval request contains "APPROVE"; the reply itself says nothing decisive.
    reply_to(request, port, TAKAHASHI, "Let me think about it.")
    err = relay.wait_for(TAKAHASHI, 2)[1]
    assert "承認" in err.body and "却下" in err.body
    number = number_in(request.subject)
    assert case_row(daemon, number).state == "in_review"
    # The token was not spent: the real decision still works.
    reply_to(request, port, TAKAHASHI, "approve")
    relay.wait_for(BROWN)


def test_request_problems_get_a_precise_answer(daemon: App, relay: CapturingRelay) -> None:
    port = daemon.cfg.smtp.port
    send(port, SMITH, "Trip", "Type: travel\nDestination: Kyoto\nAmount: lots\n")
    err = relay.wait_for(SMITH)[0]
    assert "Not accepted" in err.subject
    assert "'lots'" in err.body  # names the bad value
    assert "Purpose" in err.body and "Departure date" in err.body  # names missing fields
    assert "Type: travel" in err.body  # and shows the form to fill in

    send(port, SMITH, "Trip", "Type: holiday\nDestination: Kyoto\n")
    err = relay.wait_for(SMITH, 2)[1]
    assert '"holiday" is not a request type' in err.body and "travel" in err.body

    send(port, "stranger@example.org", "Trip", TRAVEL)
    err = relay.wait_for("stranger@example.org")[0]
    assert "stranger@example.org does not\nbelong to anyone in the company directory" in err.body

    with daemon.store.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 0


def test_help_and_new_commands(daemon: App, relay: CapturingRelay) -> None:
    port = daemon.cfg.smtp.port
    send(port, SMITH, "help", "")
    helpmail = relay.wait_for(SMITH)[0]
    assert "new TYPE" in helpmail.body and "travel" in helpmail.body and "purchase" in helpmail.body
    send(port, SMITH, "new purchase", "")
    form = relay.wait_for(SMITH, 2)[1]
    assert "Type: purchase" in form.body and "Supplier:" in form.body


def test_auto_replies_and_bounces_are_never_answered(daemon: App, relay: CapturingRelay) -> None:
    port = daemon.cfg.smtp.port
    send(port, "stranger@example.org", "Out of office", "I am away",
         headers={"Auto-Submitted": "auto-replied"})
    send(port, "mailer-daemon@example.org", "Undelivered", "bounce", envelope_from="")
    send(port, SMITH, "help", "")  # a marker processed after the two above
    relay.wait_for(SMITH)
    assert relay.to("stranger@example.org") == []
    assert relay.to("mailer-daemon@example.org") == []


def test_unknown_recipient_and_oversize_refused(daemon: App, relay: CapturingRelay) -> None:
    port = daemon.cfg.smtp.port
    with smtplib.SMTP("127.0.0.1", port) as c:
        c.ehlo()
        c.mail(SMITH)
        code, _ = c.rcpt("someone-else@example.com")
        assert code == 550
        code, _ = c.rcpt("ringi+notatoken@example.com")
        assert code == 550
        code, _ = c.rcpt(REQUEST)
        assert code == 250
    limit = daemon.cfg.smtp.max_message_bytes
    with smtplib.SMTP("127.0.0.1", port) as c, pytest.raises(smtplib.SMTPException) as exc:
        c.sendmail(SMITH, [REQUEST], b"Subject: big\r\n\r\n" + b"x" * (limit + 10))
    assert "552" in str(exc.value)


def test_sender_authentication_policy(tmp_path: Path, db_url: str,
                                      relay: CapturingRelay) -> None:
    cfg = make_config(tmp_path, db_url, relay.port, free_port(),
                      mail={"sender_auth": "authentication-results",
                            "trusted_authserv_ids": ["mx.example.com"]})
    app = App(cfg)
    app.prepare()
    app.start()
    try:
        port = cfg.smtp.port
        good = {"Authentication-Results": "mx.example.com; dmarc=pass header.from=example.com"}
        forged = {"Authentication-Results": "other.example; dmarc=pass header.from=example.com"}
        send(port, SMITH, "Monitor", "Type: purchase\nItem: Monitor\nSupplier: ACME\n"
             "Quantity: 2\nAmount: 60000\nCategory: equipment\n", headers=good)
        request = relay.wait_for(TAKAHASHI)[0]
        number = number_in(request.subject)
        # A reply whose From says Takahashi but that nothing vouches for changes nothing,
        # and is not answered (the From address is the thing we cannot trust).
        quoted = f"APPROVE\n\n> {request.subject}\n"
        send(port, TAKAHASHI, "Re: " + request.subject, quoted,
             to=str(request.message["Reply-To"]), headers=forged)
        send(port, SMITH, "help", "", headers=good)  # marker processed after the forged reply
        relay.wait_for(SMITH, 2)
        assert len(relay.to(TAKAHASHI)) == 1 and relay.to(BROWN) == []
        assert case_row(app, number).state == "in_review"
        send(port, TAKAHASHI, "Re: " + request.subject, quoted,
             to=str(request.message["Reply-To"]), headers=good)
        relay.wait_for(BROWN)
    finally:
        app.stop()


def test_outlook_style_iso2022jp_reply(daemon: App, relay: CapturingRelay) -> None:
    """A Japanese Outlook reply: ISO-2022-JP, header block quoting, REJECT with a reason."""
    from email.mime.text import MIMEText

    port = daemon.cfg.smtp.port
    send(port, TANAKA, "名古屋出張", TRAVEL.replace("Osaka", "Nagoya"))
    request = relay.wait_for(SATO)[0]
    text = ("却下します。\r\n日程を再検討してください。\r\n\r\n"
            "________________________________\r\n"
            "差出人: ringi <ringi@example.com>\r\n送信日時: 2026年11月2日 9:00\r\n"
            f"件名: {request.subject}\r\n\r\n承認 をお願いします\r\n")
    msg = MIMEText(text, "plain", "iso-2022-jp")
    msg["From"] = SATO
    msg["To"] = str(request.message["Reply-To"])
    msg["Subject"] = "RE: " + request.subject
    assert b"\x1b$B" in msg.as_bytes()  # really ISO-2022-JP on the wire
    with smtplib.SMTP("127.0.0.1", port) as c:
        c.sendmail(SATO, [str(request.message["Reply-To"])], msg.as_bytes())
    rejected = relay.wait_for(TANAKA, 2)[1]
    assert "却下されました" in rejected.subject
    assert "日程を再検討してください。" in rejected.body
    assert "承認 をお願いします" not in rejected.body
