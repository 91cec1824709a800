"""A reply to a digest with several decision lines (SPEC C.14): each checked like one reply.

The digest's token (its Reply-To) names the digest, and the digest names the steps it
listed, each with the reply token issued for it there. Each line "R-2026-000123 approve" is
applied through ReplyHandler.handle with that step's token, exactly as a single reply to
that step's own request: only the asked approver or their registered proxy (the one
authenticated sender), a step still waiting, a token neither used, revoked nor expired, a
decision read by the same parser. A second reply with the same line changes nothing (the
token is used). A line naming a case the digest did not list is refused. The per-line
confirmations and refusals are held back (Notifier.gathered) and the sender gets one mail
listing what was done and what was refused and why. Files attached to such a reply are
added to no case (which one would they belong to?); the confirmation says so.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.cases.replies import ReplyHandler
from daemon.cases.states import StepState
from daemon.directory.lookup import member, member_by_email, proxies_of, reread_directory
from daemon.notify.notifier import Gathered
from daemon.notify.views import person_name
from daemon.parsing.message import ParsedMail, answered_ids
from daemon.parsing.multidecision import MAX_LINES, DecisionLine, decision_lines, number_pattern
from daemon.security.tokens import TokenService
from daemon.store.digest_models import Digest, DigestItem
from daemon.store.models import Case, CaseStep, ReplyToken
from daemon.store.reorg_models import in_progress

log = logging.getLogger(__name__)
TEMPLATE = "digest_reply"
# What a single reply would have sent its author: here gathered into one confirmation.
GATHER = ("decision_confirmed", "reply_error", "reply_kept")


class DigestReplies:
    def __init__(self, replies: ReplyHandler) -> None:
        self.replies = replies
        self.wf = replies.wf

    def handle(self, s: Session, mail: ParsedMail, token: str | None,
               inbound_id: int | None = None) -> str | None:
        """Apply each decision line; None when the mail answers no digest.

        The digest is known by `token` (its Reply-To or subject); without one, by the
        digest mail its In-Reply-To/References name (a reply that lost the token).
        """
        if token is not None:
            digest = s.scalar(select(Digest).where(
                Digest.token_hash == self.wf.tokens.digest(token)))
        else:
            ids = list(answered_ids(mail))[:100]  # a hostile References list stays cheap
            rows = {d.message_id: d for d in s.scalars(select(Digest).where(
                Digest.message_id.in_(ids)))} if ids else {}
            digest = next((rows[i] for i in ids if i in rows), None)
        if digest is None:
            return None
        now = self.wf.clock.now()
        if inbound_id is not None:  # as a single reply: wait for a reorganisation's switch
            in_progress(s)
            reread_directory(s)
        sender = member_by_email(s, mail.from_addr) if mail.from_addr else None
        locale = sender.locale if sender else "en"
        owner = member(s, digest.person_id)
        items = list(s.scalars(select(DigestItem).where(DigestItem.digest_id == digest.id)
                               .order_by(DigestItem.id)))

        def answer(outcome: str, **ctx: Any) -> None:
            self.wf.notifier.to_address(
                s, TEMPLATE, mail.from_addr, locale,
                {"outcome": outcome, "results": [], "open_items": [], "example": "", "done": 0,
                 "refused": 0, "files_not_added": [a.filename for a in mail.attachments],
                 "owner": owner.display_name(locale) if owner else digest.person_id, **ctx},
                in_reply_to=mail.message_id)

        if sender is None or (sender.id != digest.person_id and not any(
                p.id == sender.id for p in proxies_of(s, digest.person_id, self.wf.day_of(now)))):
            log.info("digest %s: reply from %s refused: not its recipient", digest.id,
                     mail.from_addr)
            answer("not_yours")
            return f"digest {digest.id}: reply refused: not its recipient or their proxy"
        if digest.expires_at <= now:
            answer("expired")
            return f"digest {digest.id}: reply refused: expired"
        lines = decision_lines(mail.text, number_pattern(self.wf.cfg.cases.number_format))
        if not lines:
            waiting = self._waiting(s, items, locale)
            answer("no_lines", open_items=waiting,
                   example=waiting[0]["number"] if waiting else "")
            return f"digest {digest.id}: reply without decision lines"
        named = Counter(line.number for line in lines)
        results = []
        for index, line in enumerate(lines):
            mine = [i for i in items if i.number.upper() == line.number]
            if index >= MAX_LINES:  # the rest was not read
                results.append(self._refused(line, "too_many"))
            elif named[line.number] > 1:
                results.append(self._refused(line, "twice"))
            elif not mine:
                results.append(self._refused(line, "not_in_digest"))
            else:
                results.append(self._apply(s, mail, line, mine, inbound_id))
        done = sum(r["outcome"] == "done" for r in results)
        answer("done", results=results, done=done,
               refused=sum(r["outcome"] == "refused" for r in results))
        return f"digest {digest.id}: {done} of {len(results)} line(s) applied"

    def _apply(self, s: Session, mail: ParsedMail, line: DecisionLine,
               mine: list[DigestItem], inbound_id: int | None) -> dict[str, Any]:
        """The line as a single reply to its step, answered into the one confirmation."""
        steps = {i.id: s.get(CaseStep, i.step_id) for i in mine}
        item = next((i for i in mine if (st := steps[i.id]) is not None
                     and st.state == StepState.PENDING), mine[0])
        check = TokenService.check_row(s.get(ReplyToken, item.token_id), self.wf.clock.now())
        case = s.get(Case, item.case_id)
        with self.wf.notifier.gathered(GATHER) as got:
            outcome = self.replies.handle(s, replace(mail, text=line.text, attachments=()),
                                          None, inbound_id, checked=check)
        log.info("digest line %r: %s", line.line[:80], outcome)
        return self._result(s, line, case, got)

    @staticmethod
    def _refused(line: DecisionLine, problem: str) -> dict[str, Any]:
        return {"number": line.number, "title": "", "line": line.line, "outcome": "refused",
                "problem": problem, "detail": {}}

    @staticmethod
    def _result(s: Session, line: DecisionLine, case: Case | None,
                got: list[Gathered]) -> dict[str, Any]:
        base = {"number": line.number, "title": case.title if case else "", "line": line.line}
        mail = got[-1] if got else None
        if mail is not None and mail.template == "decision_confirmed":
            ctx = mail.context
            return {**base, "outcome": "done", "decision": ctx.get("decision"),
                    "reason": ctx.get("reason") or "", "next": ctx.get("next")}
        if mail is not None and mail.template == "reply_error":
            detail = {k: v for k, v in mail.context.items()
                      if k not in ("problem", "number", "documents")}
            return {**base, "outcome": "refused", "problem": mail.context["problem"],
                    "detail": detail}
        return {**base, "outcome": "kept"}  # a reorganisation runs: applied when it ends

    @staticmethod
    def _waiting(s: Session, items: list[DigestItem], locale: str) -> list[dict[str, Any]]:
        """The digest's cases still waiting, to show how to answer them."""
        out = []
        for i in items:
            step = s.get(CaseStep, i.step_id)
            case = s.get(Case, i.case_id)
            if step is not None and case is not None and step.state == StepState.PENDING:
                out.append({"number": i.number, "title": case.title,
                            "requester": person_name(s, case.requester_id, locale)})
        return out
