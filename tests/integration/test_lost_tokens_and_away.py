"""Replies that lost their token, and out-of-office replies, over ringi's real SMTP listener.

A reply sent to the plain request address with its subject edited is known by the approval
request its In-Reply-To/References name, and checked like any reply. An automatic
out-of-office reply from the asked approver's server (Outlook, Japanese Outlook, a Gmail
vacation responder) is recorded, never answered, and asks the approver's proxy at once.
"""

from __future__ import annotations

import email.utils
import smtplib
from email.message import EmailMessage

from sqlalchemy import func, select

from daemon.store.models import Case, CaseStep, InboundMessage
from tests.integration.test_outcomes import (
    ADMIN,
    BROWN,
    SATO,
    SMITH,
    SUZUKI,
    TAKAHASHI,
    TANAKA,
    World,
    number_of,
    travel,
)
from tests.support import REQUEST, Captured, wait_until


def mail_in(w: World, sender: str, subject: str, body: str, *, to: str = REQUEST,
            envelope: str | None = None, headers: dict[str, str] | None = None) -> str:
    """Deliver one mail as an MTA would, wait until it is processed; its intake outcome."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate()
    msg["Message-ID"] = email.utils.make_msgid(domain="mx.example.com")
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    with w.app.store.transaction() as s:
        before = int(s.scalar(select(func.count()).select_from(InboundMessage)) or 0)
    with smtplib.SMTP("127.0.0.1", w.port, timeout=10) as client:
        client.send_message(msg, from_addr=sender if envelope is None else envelope,
                            to_addrs=[to])

    def done() -> bool:
        with w.app.store.transaction() as s:
            rows = s.scalars(select(InboundMessage.outcome).order_by(InboundMessage.id)).all()
            return len(rows) > before and all(o is not None for o in rows)
    wait_until(done, what="the mail to be processed")
    with w.app.store.transaction() as s:
        last = s.scalar(select(InboundMessage).order_by(InboundMessage.id.desc()).limit(1))
        assert last is not None and last.outcome is not None
        return last.outcome


def mid(mail: Captured) -> str:
    return str(mail.message["Message-ID"])


def steps(w: World, number: str) -> list[tuple[str, str, str]]:
    case = w.case(number)
    with w.app.store.transaction() as s:
        return [(st.approver_id, st.kind, st.state) for st in s.scalars(
            select(CaseStep).where(CaseStep.case_id == case.id).order_by(CaseStep.seq))]


def case_count(w: World) -> int:
    with w.app.store.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(Case)) or 0)


def at_suzuki(w: World) -> tuple[str, Captured]:
    """A travel request Sato has approved: it waits for Suzuki, whose proxy is Sato."""
    w.send(TANAKA, "Trip", travel("54,500"))
    number = number_of(w.one(TANAKA))
    w.reply(w.one(SATO), SATO, "承認")
    w.new(SATO)
    w.new(TANAKA)
    return number, w.one(SUZUKI)


# --------------------------------------------------------------------------- lost tokens

def test_reply_without_token_is_known_by_the_request_it_answers(world: World) -> None:
    """No `+token` address, no [#token] in the subject: In-Reply-To names the request."""
    w = world
    w.send(TANAKA, "Trip", travel("54,500"))
    ack = w.one(TANAKA)
    number = number_of(ack)
    request = w.one(SATO)
    thread = f"<case.{number}@example.com>"

    # The requester forges a reply to Sato's request (with a full, valid request form): it
    # is refused as a reply, never opened as a new case.
    outcome = mail_in(w, TANAKA, "出張申請", travel("1,000"), headers={
        "In-Reply-To": mid(request), "References": f"{thread} {mid(request)}"})
    assert outcome == "reply refused: not_asked", outcome
    refused = w.one(TANAKA)
    assert "ご判断の対象外" in refused.subject or "判断できるのはご本人のみ" in refused.body
    assert case_count(w) == 1
    assert steps(w, number) == [("sato", "approver", "pending")]

    # A reply whose References name only the acknowledgement and the case thread: no
    # decision, whoever sends it.
    outcome = mail_in(w, SATO, "Re: 受付のお知らせ", "承認", headers={
        "In-Reply-To": mid(ack), "References": f"{thread} {mid(ack)}"})
    assert "承認" not in outcome and not outcome.startswith(number), outcome
    w.new(SATO)  # told the mail is no request (as any mail without a token)
    assert steps(w, number) == [("sato", "approver", "pending")]
    assert not any(k == "decision" for k, _ in w.events(number))

    # Sato answers from another client: plain address, subject rewritten, token gone.
    outcome = mail_in(w, SATO, "Re: 出張の件", "承認します\n\n佐藤", headers={
        "In-Reply-To": mid(request), "References": f"{thread} {mid(request)}"})
    assert outcome == f"{number}: approve by sato", outcome
    assert "承認しました" in w.one(SATO).subject
    assert ("sato", "approver", "approved") in steps(w, number)
    w.one(SUZUKI)  # the route goes on
    w.new(TANAKA)  # progress

    # The same reply again: single use, refused as a reply.
    outcome = mail_in(w, SATO, "Re: 出張の件", "承認します", headers={"In-Reply-To": mid(request)})
    assert outcome == "reply refused: moved_on", outcome
    w.new(SATO)
    w.nothing_more(SATO, SUZUKI, TANAKA, ADMIN)
    assert case_count(w) == 1


def test_the_most_recent_request_named_counts(world: World) -> None:
    """Several requests in References: In-Reply-To first, then the last one listed."""
    w = world
    w.send(SMITH, "Trip", travel("54,500"))
    number = number_of(w.one(SMITH))
    first = w.one(TAKAHASHI)
    w.reply(first, TAKAHASHI, "approve")
    w.new(TAKAHASHI)
    w.new(SMITH)
    w.reply(w.one(BROWN), BROWN, "REJECT\nWhich customer?")
    w.new(BROWN)
    back = w.one(TAKAHASHI)  # asked again: a new request, a new token

    # References in the wrong order: the newest listed is the first request, already used.
    outcome = mail_in(w, TAKAHASHI, "Trip", "approve", headers={
        "References": f"{mid(back)} {mid(first)}"})
    assert outcome == "reply refused: moved_on", outcome
    w.new(TAKAHASHI)
    # In-Reply-To wins over References.
    outcome = mail_in(w, TAKAHASHI, "Trip", "approve", headers={
        "In-Reply-To": mid(back), "References": f"{mid(back)} {mid(first)}"})
    assert outcome == f"{number}: approve by takahashi", outcome
    w.new(TAKAHASHI)
    w.one(BROWN)  # asked again after the re-approval


# --------------------------------------------------------------------------- out of office

OUTLOOK_BODY = """I am out of the office until 16 November with no access to email.
For urgent matters please contact Hanako Sato (sato@example.com).
"""


def test_outlook_out_of_office_asks_the_proxy_at_once(world: World) -> None:
    """Outlook's "Automatic reply:" from Suzuki, whose registered proxy is Sato."""
    w = world
    number, request = at_suzuki(w)
    outcome = mail_in(w, SUZUKI, f"Automatic reply: {request.subject}", OUTLOOK_BODY,
                      envelope="", headers={
                          "Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All",
                          "In-Reply-To": mid(request), "References": mid(request),
                          "Thread-Topic": request.subject, "Content-Language": "en-US"})
    assert "out-of-office reply from Ichiro Suzuki recorded" in outcome, outcome
    assert "registered proxy asked at once: Hanako Sato" in outcome
    proxy = w.one(SATO)
    assert "承認依頼" in proxy.subject and "不在" in proxy.body and "鈴木" in proxy.body
    told = w.one(TANAKA)
    assert "代理人" in told.subject and "佐藤" in told.body and "鈴木" in told.body
    events = w.events(number)
    away = [d for k, d in events if k == "out_of_office"]
    assert len(away) == 1 and away[0].startswith("out of office: Ichiro Suzuki"), away
    assert "In-Reply-To" in away[0]
    assert any(k == "escalated" and "out of office" in d for k, d in events)
    assert ("sato", "escalation", "pending") in steps(w, number)
    w.nothing_more(SUZUKI)  # the out-of-office address is never answered

    # A second out-of-office reply to the same ask (now at the return path): nothing more.
    outcome = mail_in(w, SUZUKI, f"Automatic reply: {request.subject}", OUTLOOK_BODY,
                      to=request.mail_from, envelope="", headers={
                          "Auto-Submitted": "auto-replied", "In-Reply-To": mid(request)})
    assert "already recorded" in outcome, outcome
    w.nothing_more(SATO, TANAKA, SUZUKI, ADMIN)
    assert [k for k, _ in w.events(number)].count("out_of_office") == 1

    # Whoever decides first counts: the proxy approves, the case is done.
    w.reply(proxy, SATO, "承認")
    w.new(SATO)
    assert "承認されました" in w.one(TANAKA).subject
    w.nothing_more(SUZUKI)


def test_out_of_office_without_proxy_is_recorded_only(world: World) -> None:
    """Japanese Outlook's "自動応答:" to Sato's `+token` address; Sato has no proxy."""
    w = world
    w.send(TANAKA, "Trip", travel("54,500"))
    number = number_of(w.one(TANAKA))
    request = w.one(SATO)
    reply_to = str(request.message["Reply-To"])
    body = "申し訳ありませんが、11月16日まで不在にしております。"
    outcome = mail_in(w, SATO, f"自動応答: {request.subject}", body, to=reply_to,
                      envelope="", headers={"X-Auto-Response-Suppress": "All",
                                            "Auto-Submitted": "auto-generated"})
    assert "recorded (no registered proxy to ask)" in outcome, outcome
    away = [d for k, d in w.events(number) if k == "out_of_office"]
    assert len(away) == 1 and away[0].startswith("out of office: Hanako Sato"), away
    assert "reply token" in away[0]
    outcome = mail_in(w, SATO, f"自動応答: {request.subject}", body, to=reply_to, envelope="",
                      headers={"Auto-Submitted": "auto-replied"})
    assert "already recorded" in outcome, outcome
    w.nothing_more(SATO, SUZUKI, TANAKA, ADMIN)
    assert steps(w, number) == [("sato", "approver", "pending")]
    assert [k for k, _ in w.events(number)].count("out_of_office") == 1
    # The step still waits for Sato, whose token still works.
    w.reply(request, SATO, "承認")
    assert "承認しました" in w.one(SATO).subject


def test_gmail_vacation_responder_at_the_return_path(world: World) -> None:
    """A vacation responder marking only `Precedence: bulk`, sent (RFC 3834) to the request's
    return path from the null sender, with a subject of its own."""
    w = world
    number, request = at_suzuki(w)
    outcome = mail_in(w, SUZUKI, "休暇中です", "11/16まで休暇をいただいております。",
                      to=request.mail_from, envelope="", headers={
                          "Precedence": "bulk", "In-Reply-To": mid(request)})
    assert "registered proxy asked at once" in outcome, outcome
    assert "不在" in w.one(SATO).body
    w.one(TANAKA)
    assert any(k == "out_of_office" and "return path" in d for k, d in w.events(number))
    w.nothing_more(SUZUKI, ADMIN)


def test_out_of_office_that_matches_nothing_is_ignored(world: World) -> None:
    """From someone who is not the asked approver (a forged or forwarded one), or naming no
    approval request: ignored as before, never answered, nothing changes."""
    w = world
    number, request = at_suzuki(w)
    ack = w.relay.to(TANAKA)[0]
    oof = {"Auto-Submitted": "auto-replied"}
    outcome = mail_in(w, BROWN, f"Automatic reply: {request.subject}", OUTLOOK_BODY,
                      headers={**oof, "In-Reply-To": mid(request)})
    assert outcome == "ignored, not answered: out of office", outcome
    outcome = mail_in(w, SATO, f"Automatic reply: {request.subject}", OUTLOOK_BODY,
                      headers={**oof, "In-Reply-To": mid(request)})  # the proxy, not Suzuki
    assert outcome == "ignored, not answered: out of office", outcome
    outcome = mail_in(w, SUZUKI, "Automatic reply: 受付", OUTLOOK_BODY,
                      headers={**oof, "In-Reply-To": mid(ack)})
    assert outcome == "ignored, not answered: out of office", outcome
    # Other automatic mail from the asked approver stays ignored as before.
    outcome = mail_in(w, SUZUKI, "Meeting notice", "Room 3", headers={
        "Auto-Submitted": "auto-generated", "In-Reply-To": mid(request)})
    assert outcome == "ignored, not answered: auto-submitted", outcome
    w.nothing_more(SATO, SUZUKI, TANAKA, BROWN, ADMIN)
    assert not any(k in ("out_of_office", "escalated") for k, _ in w.events(number))
    assert ("suzuki", "approver", "pending") in steps(w, number)
