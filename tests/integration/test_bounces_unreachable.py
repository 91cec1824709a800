"""Approvers who cannot be reached, and execution requests that come back.

A relay that refuses an approval request for good (550) is the same news as a bounce: the
proxy, or without one the administrator, is asked at once, on the case's record, exactly once
however often the dead mail is retried or its run reclaimed. An execution request leaves with
its own return path; a real Postfix DSN about it, delivered to ringi's SMTP listener, is
recorded on the case and told to the requester and the administrator, and never answered.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.store.models import OutboundMail, WorkItem
from daemon.workqueue.queue import State
from tests.integration.test_bounces import (
    RETURN_PATH,
    bounce_of,
    bounces,
    deliver,
    last_outcome,
    steps,
)
from tests.integration.test_conditions import through_line
from tests.integration.test_execution import (
    ACME,
    MONDAY_10_JST,
    executions,
    procurement_approves,
    purchase,
)
from tests.integration.test_outcomes import (
    ADMIN,
    SATO,
    SMITH,
    SUZUKI,
    TANAKA,
    World,
    number_of,
    start_world,
    travel,
)
from tests.support import CapturingRelay, wait_until

NO_SUCH_USER = "550 5.1.1 no such user"


@pytest.fixture
def world(tmp_path: Path, db_url: str, relay: CapturingRelay) -> Iterator[World]:
    w = start_world(tmp_path, db_url, relay)
    yield w
    w.app.stop()


def request_item(w: World, to: str) -> WorkItem:
    """The outbox item of the approval request mailed to `to`."""
    with w.app.store.transaction() as s:
        mail = s.scalars(select(OutboundMail).where(
            OutboundMail.template == "approval_request",
            OutboundMail.recipient == to)).one()
        item = s.scalars(select(WorkItem).where(WorkItem.queue == "outbound",
                                                WorkItem.ref_id == mail.id)).one()
        s.expunge(item)
        return item


def kinds(w: World, number: str) -> list[str]:
    return [k for k, _ in w.events(number)]


def test_a_refused_approval_request_asks_the_proxy_once_however_often_retried(
        world: World) -> None:
    w = world
    w.relay.refuse[SUZUKI] = [NO_SUCH_USER] * 9
    w.send(TANAKA, "Trip", travel("54,500"))
    number = number_of(w.one(TANAKA))
    # Positive control: before the refusal, nobody but the approver is asked.
    assert steps(w, number) == [("sato", "approver", "pending")]
    w.reply(w.one(SATO), SATO, "承認")
    w.new(SATO)
    w.new(TANAKA)
    proxy = w.one(SATO)  # Suzuki's request was refused; Sato is Suzuki's registered proxy
    assert "承認依頼" in proxy.subject and "配信できなかった" in proxy.body
    assert "鈴木" in proxy.body
    assert ("sato", "escalation", "pending") in steps(w, number)
    events = w.events(number)
    failed = [d for k, d in events if k == "mail failed"]
    assert len(failed) == 1 and NO_SUCH_USER in failed[0]
    escalated = [d for k, d in events if k == "escalated"]
    assert len(escalated) == 1 and "was refused" in escalated[0] \
        and "registered proxy asked at once" in escalated[0]
    alert = w.one(ADMIN)  # the dead letter is not silent either
    assert "Dead letter: approval request mail to suzuki@example.com" in alert.subject
    assert "Meanwhile: registered proxy asked at once: Hanako Sato." in alert.body
    item = request_item(w, SUZUKI)
    assert item.state == State.DEAD and item.attempts == 1

    # The operator retries the dead mail; the relay refuses it again: nobody asked twice.
    assert w.app.queue.retry(item.id)
    w.app.outbox_runner.wakeup.set()
    wait_until(lambda: request_item(w, SUZUKI).state == State.DEAD
               and request_item(w, SUZUKI).attempts == 1
               and kinds(w, number).count("mail failed") == 2, what="the retry to die")
    w.nothing_more(SATO, ADMIN, SUZUKI)
    assert kinds(w, number).count("escalated") == 1
    assert [st for st in steps(w, number) if st[1] == "escalation"] == \
        [("sato", "escalation", "pending")]
    # Sato decides as proxy: the case goes on.
    w.reply(proxy, SATO, "承認")
    assert "承認しました" in w.one(SATO).subject
    wait_until(lambda: steps(w, number)[1:3] == [("suzuki", "approver", "superseded"),
                                                 ("sato", "escalation", "approved")],
               what="Suzuki's step to be decided by the proxy")


def test_refused_without_proxy_asks_the_administrator_once_after_a_reclaimed_run(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    """Runners off: the request's first run is interrupted (claimed, never finished), the
    item is reclaimed when its lease runs out, the next run meets the 550."""
    w = start_world(tmp_path, db_url, relay, queue={"runners": False})
    try:
        relay.refuse[SATO] = [NO_SUCH_USER] * 9
        w.send(TANAKA, "Trip", travel("54,500"))
        assert w.app.inbound_runner.drain() == 1
        claimed = w.app.queue.claim("outbound")  # a runner that dies mid-send
        assert claimed is not None
        w.clock.advance(timedelta(seconds=w.app.cfg.queue.lease_seconds + 1))
        assert w.app.queue.reclaim() >= 1
        w.app.outbox_runner.drain()
        w.app.outbox_runner.drain()
        number = number_of(w.one(TANAKA))
        asked = [m for m in relay.to(ADMIN) if "Approval needed" in m.subject]
        alerts = [m for m in relay.to(ADMIN) if "Dead letter" in m.subject]
        assert len(asked) == 1 and "could not be delivered" in asked[0].body
        assert "Hanako Sato" in asked[0].body
        assert len(alerts) == 1 and "Meanwhile: administrator asked at once" in alerts[0].body
        assert ("admin", "escalation", "pending") in steps(w, number)
        assert kinds(w, number).count("escalated") == 1
        assert kinds(w, number).count("mail failed") == 1
        item = request_item(w, SATO)
        assert item.state == State.DEAD and item.attempts == 2  # the reclaimed run counted
        assert relay.to(SATO) == []
    finally:
        w.app.stop()


def test_a_refused_notice_keeps_the_dead_letter_path(world: World) -> None:
    """Positive control: a refused acknowledgement is recorded and told to the
    administrator; nobody else is asked and the request waits for Sato as before."""
    w = world
    w.relay.refuse[TANAKA] = [NO_SUCH_USER] * 9
    w.send(TANAKA, "Trip", travel("54,500"))
    request = w.one(SATO)
    number = number_of(request)
    alert = w.one(ADMIN)
    assert "Dead letter: ack mail to tanaka@example.com" in alert.subject
    assert "Meanwhile" not in alert.body
    assert steps(w, number) == [("sato", "approver", "pending")]
    assert "escalated" not in kinds(w, number) and "mail failed" in kinds(w, number)
    w.nothing_more(SATO, ADMIN)


@pytest.fixture
def exec_world(tmp_path: Path, db_url: str, relay: CapturingRelay) -> Iterator[World]:
    w = start_world(tmp_path, db_url, relay)
    w.clock.set(MONDAY_10_JST)  # inside every sample destination's hours
    yield w
    w.app.stop()


def test_a_bounced_execution_request_is_on_the_case_and_told(exec_world: World) -> None:
    w = exec_world
    number = through_line(w, purchase("180,000"))
    procurement_approves(w)
    order = w.one(ACME)
    assert RETURN_PATH.match(order.mail_from), order.mail_from
    assert "Executed" in w.one(SMITH).subject
    at = order.mail_from.rindex("@")
    forged = order.mail_from[:at - 1] + \
        ("a" if order.mail_from[at - 1] != "a" else "b") + order.mail_from[at:]

    # Positive control: the report to a forged return path, quoting no mail ringi sent,
    # changes nothing.
    unknown = "<f0e1d2c3b4a5968778695a4b3c2d1e0f@example.com>"
    deliver(w, bounce_of("postfix-failed.eml", order, path=forged).replace(
        str(order.message["Message-ID"]).encode(), unknown.encode()), forged)
    assert "wrong (forged" in last_outcome(w)
    assert "bounced" not in kinds(w, number)
    w.nothing_more(SMITH, ADMIN, ACME)

    deliver(w, bounce_of("postfix-failed.eml", order), order.mail_from)
    outcome = last_outcome(w)
    assert "execution_request mail" in outcome and "may not have been executed" in outcome
    bounced = [d for k, d in w.events(number) if k == "bounced"]
    assert len(bounced) == 1 and ACME in bounced[0] and "5.1.1" in bounced[0]
    assert "return-path" in bounced[0]
    told = w.one(SMITH)
    assert told.subject.startswith(
        f"[{number}] Execution request bounced: Purchase request / John Smith / ")
    assert "may not have been executed" in told.body and "5.1.1" in told.body
    admin = w.one(ADMIN)
    assert "Execution request bounced" in admin.subject and ACME in admin.body
    (ex,) = executions(w)
    assert ex.reason == "bounced" and "bounced" in ex.detail
    assert bounces(w) == [("failed", "return-path", "5.1.1")]

    # The same report again acts once; no bounce is ever answered.
    deliver(w, bounce_of("postfix-failed.eml", order, own_id="<again@mx.corp.test>"),
            order.mail_from)
    assert "already recorded" in last_outcome(w)
    w.nothing_more(SMITH, ADMIN, ACME)
    senders = {"mailer-daemon@mx.corp.test", "postmaster@mx.corp.test", ""}
    assert not [m for m in w.relay.mails if m.to.lower() in senders]


def test_execution_request_relay_sees_its_return_path(exec_world: World) -> None:
    """The envelope sender names the stored request mail (so its bounce matches it)."""
    w = exec_world
    through_line(w, purchase("180,000"))
    procurement_approves(w)
    order = w.one(ACME)
    (ex,) = executions(w)
    assert order.mail_from.startswith(f"ringi+bounce-{ex.mail_id}-")
    assert w.app.return_paths.mail_id(order.mail_from) == ex.mail_id
