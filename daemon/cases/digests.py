"""One mail instead of thirty (SPEC C.14): the digest of every case waiting for an approver.

Sent each company day at `[workflow] digest_hour` (the `[workflow] timezone`'s hour) from
the timers' pass, and at once when someone sends the mail command `pending`. Each case gets
a few lines and its own decision links, with a reply token issued for that step in this
digest (stored hashed, single use, expiring, like an approval request's). The digest itself
carries one more token in its Reply-To: a reply with several lines "R-2026-000123 approve"
is known by it (daemon.cases.digestreplies), and only the steps it lists can be decided.

Once per person and company day, crash-safe and once across daemons: the daily digest's
row claims `(person, day)` (unique) in the transaction that queues the mail. Nobody gets a
daily digest with nothing in it, nor after `digest off` (a table of its own: directory
imports rewrite people rows).
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from daemon.cases.states import CaseState, StepState
from daemon.cases.workflow import DECISION_WORDS, Workflow
from daemon.directory.lookup import Member, member, primary_email
from daemon.notify.compose import decision_link
from daemon.notify.views import case_view
from daemon.security.tokens import new_token
from daemon.store.db import Store, insert_if_absent, rowcount
from daemon.store.digest_models import Digest, DigestItem, DigestOptOut
from daemon.store.models import Case, CaseStep, OutboundMail, ReplyToken

log = logging.getLogger(__name__)
TEMPLATE = "digest"
DECIDABLE = (CaseState.IN_REVIEW, CaseState.ON_HOLD)
MAX_ITEMS = 100  # cases listed in one digest; the rest come in the next one


def waiting(s: Session, person_id: str) -> list[tuple[CaseStep, Case]]:
    """Steps waiting for `person_id` on cases that can be decided, oldest ask first."""
    return [(st, c) for st, c in s.execute(
        select(CaseStep, Case).join(Case, Case.id == CaseStep.case_id).where(
            CaseStep.approver_id == person_id, CaseStep.state == StepState.PENDING,
            Case.state.in_(DECIDABLE)).order_by(CaseStep.asked_at, CaseStep.id))]


def send_digest(wf: Workflow, s: Session, person: Member, day: datetime.date | None = None,
                in_reply_to: str | None = None) -> int | None:
    """Queue `person`'s digest; returns how many cases it lists.

    With `day` it is that company day's daily digest: not sent when nothing waits, and None
    when it was already claimed (by this daemon earlier, or by another one). Without, it
    answers `pending` (`in_reply_to`), and says so when nothing waits.
    """
    now = wf.clock.now()
    steps = waiting(s, person.id)
    if day is not None and not steps:
        return 0
    token = new_token() if steps else None
    digest: Digest | None = None
    if token is not None:
        digest = Digest(token_hash=wf.tokens.digest(token), person_id=person.id,
                        kind="daily" if day else "request", company_day=day, created_at=now,
                        expires_at=now + wf.tokens.ttl)
        try:
            with s.begin_nested():  # the claim: another daemon may have sent it already
                s.add(digest)
                s.flush()
        except IntegrityError:
            return None
    items = [_item(wf, s, digest, step, case, person.locale)
             for step, case in steps[:MAX_ITEMS]] if digest is not None else []
    ctx: dict[str, Any] = {
        "items": items, "more": max(0, len(steps) - MAX_ITEMS), "daily": day is not None,
        "day": day, "expires": digest.expires_at if digest else None, "token": token,
        "example": items[0]["number"] if items else "", "hour": _hour(wf),
    }
    address = primary_email(s, person.id)
    if address is None:
        log.error("%s has no email address; digest not sent", person.id)
    else:
        wf.notifier.to_address(s, TEMPLATE, address, person.locale, ctx,
                               name=person.display_name(person.locale), reply_token=token,
                               in_reply_to=in_reply_to)
        if digest is not None:  # a reply that lost the token is known by this mail's id
            digest.message_id = s.scalar(select(OutboundMail.message_id).where(
                OutboundMail.template == TEMPLATE, OutboundMail.recipient == address.lower())
                .order_by(OutboundMail.id.desc()).limit(1))
    return len(items)


def _hour(wf: Workflow) -> int | None:
    hour = wf.cfg.workflow.digest_hour
    return hour if hour is not None and hour >= 0 else None


def _item(wf: Workflow, s: Session, digest: Digest, step: CaseStep, case: Case,
          locale: str) -> dict[str, Any]:
    """One case of the digest, with a fresh token for its step and its decision links."""
    token = wf.tokens.issue(s, case.id, step.id, step.approver_id, wf.clock.now())
    row = s.scalar(select(ReplyToken.id).where(ReplyToken.token_hash == wf.tokens.digest(token)))
    assert row is not None  # just added in this transaction
    s.add(DigestItem(digest_id=digest.id, number=case.number, case_id=case.id,
                     step_id=step.id, token_id=row))
    view = case_view(s, case, wf.types, locale)
    hint = f"[{case.number}] {case.title} [#{token}]"
    return {"number": case.number, "type_title": view["type_title"],
            "requester": view["requester"], "amount": view["amount"], "title": case.title,
            "asked": step.asked_at, "on_hold": case.state == CaseState.ON_HOLD,
            "mode": step.mode,
            "links": {w: decision_link(wf.cfg.mail, token, hint, w) for w in DECISION_WORDS}}


def digest_wanted(s: Session, person_id: str) -> bool:
    return s.get(DigestOptOut, person_id) is None


def set_digest(s: Session, person_id: str, wanted: bool, now: datetime.datetime) -> bool:
    """`digest on` / `digest off`; returns whether anything changed."""
    if wanted:
        return rowcount(s.execute(delete(DigestOptOut).where(
            DigestOptOut.person_id == person_id))) > 0
    return insert_if_absent(s, DigestOptOut, {"person_id": person_id, "since": now},
                            ["person_id"])


class DailyDigests:
    """The timers' duty: each approver with something waiting gets the day's digest once."""

    def __init__(self, store: Store, workflow: Workflow) -> None:
        self.store = store
        self.wf = workflow

    def due(self) -> int:
        """Digests sent in this pass (none before the hour, none twice a company day)."""
        hour = _hour(self.wf)
        if hour is None:
            return 0
        local = self.wf.clock.now().astimezone(self.wf.cfg.workflow.zone)
        if local.hour < hour:
            return 0
        day = local.date()
        with self.store.transaction() as s:
            people = list(s.scalars(select(CaseStep.approver_id).join(
                Case, Case.id == CaseStep.case_id).where(
                CaseStep.state == StepState.PENDING, Case.state.in_(DECIDABLE),
                ~exists().where(Digest.person_id == CaseStep.approver_id,
                                Digest.company_day == day),
                ~exists().where(DigestOptOut.person_id == CaseStep.approver_id))
                .distinct().order_by(CaseStep.approver_id)))
        sent = 0
        for pid in people:
            try:
                with self.store.transaction() as s:
                    person = member(s, pid)
                    if person is not None and person.person.active and \
                            digest_wanted(s, pid) and send_digest(self.wf, s, person, day):
                        sent += 1
            except Exception:
                log.exception("%s: the daily digest failed; the next pass retries", pid)
        return sent
