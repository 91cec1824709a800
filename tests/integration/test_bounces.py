"""Bounces come home: real Postfix DSNs (and a reconstructed Exchange NDR, a qmail-style
prose bounce) delivered to ringi's real SMTP listener, about mails ringi really sent."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from daemon.store.models import Bounce, CaseStep, InboundMessage
from tests.integration.test_outcomes import (
    ADMIN,
    SATO,
    SUZUKI,
    TANAKA,
    World,
    number_of,
    start_world,
    travel,
)
from tests.support import ROOT, Captured, CapturingRelay, wait_until

DSN = ROOT / "tests" / "data" / "dsn"
# What the fixtures' bounced mail is (see tests/data/dsn/README.md).
FIX_RCPT, FIX_ID = "brown@corp.test", "<0f1e2d3c4b5a69788796a5b4c3d2e1f0@example.com>"
FIX_PATH = "ringi+bounce-1-aaaaaaaaaaaaaaaa@example.com"
DELAY_RCPT, DELAY_ID = "slow@corp.test", "<1a2b3c4d5e6f708192a3b4c5d6e7f809@example.com>"
DELAY_PATH = "ringi+bounce-2-bbbbbbbbbbbbbbbb@example.com"
RETURN_PATH = re.compile(r"^ringi\+bounce-\d+-[a-z2-7]{16}@example\.com$")


@pytest.fixture
def world(tmp_path: Path, db_url: str, relay: CapturingRelay) -> Iterator[World]:
    w = start_world(tmp_path, db_url, relay)
    yield w
    w.app.stop()


def bounce_of(fixture: str, mail: Captured, *, own_id: str | None = None,
              rcpt: str | None = None, path: str | None = None) -> bytes:
    """A fixture rewritten to be about `mail` (its recipient, Message-ID, return path)."""
    raw = (DSN / fixture).read_bytes()
    delayed = "delayed" in fixture
    subs = {DELAY_RCPT if delayed else FIX_RCPT: rcpt or mail.to,
            DELAY_ID if delayed else FIX_ID: str(mail.message["Message-ID"]),
            DELAY_PATH if delayed else FIX_PATH: path or mail.mail_from}
    for old, new in subs.items():
        raw = raw.replace(old.encode(), new.encode())
    if own_id:  # another report about the same mail (a second MTA, a resend)
        raw = re.sub(rb"(?im)^(Message-I[dD]: )<[^>]+>", b"\\1" + own_id.encode(), raw, count=1)
    return raw


def deliver(w: World, raw: bytes, rcpt: str) -> None:
    """As an MTA delivers a bounce: null envelope sender."""
    before = _inbound_count(w)
    with smtplib.SMTP("127.0.0.1", w.port, timeout=10) as client:
        client.sendmail("", [rcpt], raw)
    wait_until(lambda: _settled(w, before + 1), what="the bounce to be processed")


def _inbound_count(w: World) -> int:
    with w.app.store.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(InboundMessage)) or 0)


def _settled(w: World, count: int) -> bool:
    with w.app.store.transaction() as s:
        rows = s.scalars(select(InboundMessage.outcome)).all()
        return len(rows) >= count and all(o is not None for o in rows)


def last_outcome(w: World) -> str:
    with w.app.store.transaction() as s:
        row = s.scalar(select(InboundMessage).order_by(InboundMessage.id.desc()).limit(1))
        assert row is not None and row.outcome is not None
        return row.outcome


def steps(w: World, number: str) -> list[tuple[str, str, str]]:
    case = w.case(number)
    with w.app.store.transaction() as s:
        return [(st.approver_id, st.kind, st.state) for st in s.scalars(
            select(CaseStep).where(CaseStep.case_id == case.id).order_by(CaseStep.seq))]


def bounces(w: World) -> list[tuple[str, str, str]]:
    with w.app.store.transaction() as s:
        return [(b.action, b.matched_by, b.status) for b in s.scalars(
            select(Bounce).order_by(Bounce.id))]


def test_a_bounced_approval_request_goes_to_the_proxy_at_once(world: World) -> None:
    """Postfix's delay warning is recorded only; its non-delivery report reroutes at once to
    the registered proxy; later reports about the same mail (another DSN, an Exchange NDR)
    change nothing; the bounced approver's own token still works."""
    w = world
    w.send(TANAKA, "Trip", travel("54,500"))
    number = number_of(w.one(TANAKA))
    w.reply(w.one(SATO), SATO, "承認")
    w.new(SATO)
    w.new(TANAKA)
    request = w.one(SUZUKI)  # Sato is Suzuki's registered proxy
    assert RETURN_PATH.match(request.mail_from), request.mail_from
    assert request.mail_from != w.relay.to(TANAKA)[0].mail_from  # one return path per mail

    deliver(w, bounce_of("postfix-delayed.eml", request), request.mail_from)
    assert "recorded only" in last_outcome(w)
    assert [k for k, _ in w.events(number)].count("delivery_delayed") == 1
    w.nothing_more(SATO, ADMIN, SUZUKI)
    assert ("sato", "escalation", "pending") not in steps(w, number)

    deliver(w, bounce_of("postfix-failed.eml", request), request.mail_from)
    proxy = w.one(SATO)
    assert "承認依頼" in proxy.subject and "配信できなかった" in proxy.body
    assert "鈴木" in proxy.body  # names whose request bounced
    token = re.search(r"\[#([a-z2-7]{32})\]", proxy.subject)
    old = re.search(r"\[#([a-z2-7]{32})\]", request.subject)
    assert token and old and token.group(1) != old.group(1)  # a fresh token of their own
    events = w.events(number)
    bounced = [d for k, d in events if k == "bounced"]
    assert len(bounced) == 1 and "5.1.1" in bounced[0] and "User unknown" in bounced[0]
    assert "suzuki@example.com" in bounced[0] and "return-path" in bounced[0]
    assert any(k == "escalated" and "bounced" in d for k, d in events)
    assert ("sato", "escalation", "pending") in steps(w, number)

    # The same failure reported again (a second DSN, then Exchange's NDR): acted on once.
    deliver(w, bounce_of("postfix-failed.eml", request, own_id="<again@mx.corp.test>"),
            request.mail_from)
    assert "already recorded" in last_outcome(w)
    deliver(w, bounce_of("exchange-ndr.eml", request), "ringi@example.com")
    assert "already recorded" in last_outcome(w)
    w.nothing_more(SATO, ADMIN, SUZUKI)
    assert [k for k, _ in w.events(number)].count("bounced") == 1
    assert bounces(w) == [("delayed", "return-path", "4.3.2"), ("failed", "return-path", "5.1.1")]
    # Nobody answered any bounce: every mail ringi sent went to a person of the case.
    assert {m.to for m in w.relay.mails} <= {TANAKA, SATO, SUZUKI}

    # Suzuki's own token stays valid (the address may work again): whoever decides first.
    w.reply(request, SUZUKI, "承認")
    assert "承認しました" in w.one(SUZUKI).subject
    assert ("sato", "escalation", "superseded") in steps(w, number)


def test_forged_bounces_change_nothing_then_exchange_ndr_asks_the_administrator(
        world: World) -> None:
    """Forged bounces (a wrong return-path tag, an unknown Message-ID, a known Message-ID
    reported for an address it was not sent to) are logged and ignored; the genuine Exchange
    NDR about the same request (the positive control) asks the administrator at once, as
    Sato has no proxy; a bounced notice (the requester's acknowledgement, a prose bounce) is
    told to the administrator; the alert's own bounce loops nowhere."""
    w = world
    w.send(TANAKA, "Trip", travel("54,500"))
    ack = w.one(TANAKA)
    number = number_of(ack)
    request = w.one(SATO)  # Sato has no registered proxy
    sent_id = str(request.message["Message-ID"])
    at = request.mail_from.rindex("@")
    forged_path = request.mail_from[:at - 1] + \
        ("a" if request.mail_from[at - 1] != "a" else "b") + request.mail_from[at:]
    unknown = "<f0e1d2c3b4a5968778695a4b3c2d1e0f@example.com>"

    deliver(w, bounce_of("postfix-failed.eml", request, path=forged_path).replace(
        sent_id.encode(), unknown.encode()), forged_path)
    assert "wrong (forged" in last_outcome(w) and "ignored" in last_outcome(w)
    deliver(w, bounce_of("exchange-ndr.eml", request).replace(
        sent_id.encode(), unknown.encode()), "ringi@example.com")
    assert "matches no mail" in last_outcome(w)
    deliver(w, bounce_of("postfix-failed.eml", request, rcpt="someone@elsewhere.example",
                         path="ringi@example.com"), "ringi@example.com")
    assert "but not its recipient" in last_outcome(w)
    assert steps(w, number) == [("sato", "approver", "pending")]
    assert not any(k in ("bounced", "escalated") for k, _ in w.events(number))
    assert bounces(w) == []
    w.nothing_more(ADMIN, SATO, TANAKA)

    # Exchange reported to the plain request address: matched by the Message-ID inside.
    deliver(w, bounce_of("exchange-ndr.eml", request), "ringi@example.com")
    asked = w.one(ADMIN)
    assert "Approval needed" in asked.subject and "could not be delivered" in asked.body
    assert "Hanako Sato" in asked.body
    assert ("admin", "escalation", "pending") in steps(w, number)
    detail = next(d for k, d in w.events(number) if k == "bounced")
    assert "5.1.10" in detail and "RecipientNotFound" in detail and "message-id" in detail

    # A prose bounce from a server that writes `From: MAILER-DAEMON` without a domain.
    deliver(w, bounce_of("qmail-failed.eml", ack).replace(
        b"From: MAILER-DAEMON@mx.corp.test", b"From: MAILER-DAEMON"), "ringi@example.com")
    alert = w.one(ADMIN)
    assert "[ringi]" in alert.subject and "bounced" in alert.subject and number in alert.subject
    assert "tanaka@example.com" in alert.body and "5.1.1" in alert.body
    assert "the administrator is told" in last_outcome(w)

    # The alert itself bounces: recorded, nobody told again.
    deliver(w, bounce_of("postfix-failed.eml", alert), alert.mail_from)
    assert "nobody to tell" in last_outcome(w)
    w.nothing_more(ADMIN, TANAKA, SATO)
    assert [a for a, _, _ in bounces(w)] == ["failed", "failed", "failed"]
