"""Decisions by reply: token, sender and case state are all checked before anything changes."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.cases.decisions import Decisions
from daemon.cases.documents import Stage, not_added
from daemon.cases.states import CaseState, StepState
from daemon.cases.workflow import Workflow
from daemon.directory.lookup import member, member_by_email, proxies_of, reread_directory
from daemon.notify.views import person_name
from daemon.parsing.message import ParsedMail, answered_ids
from daemon.parsing.reply import Decision, parse_decision
from daemon.security.tokens import TokenCheck, TokenProblem
from daemon.store.models import Case, CaseStep
from daemon.store.reorg_models import Reorganisation, ReorgKeptReply, in_progress

log = logging.getLogger(__name__)

DECIDABLE = {CaseState.IN_REVIEW, CaseState.ON_HOLD}


class ReplyHandler:
    def __init__(self, workflow: Workflow, decisions: Decisions) -> None:
        self.wf = workflow
        self.decisions = decisions

    def answers_request(self, s: Session, mail: ParsedMail) -> bool:
        """The mail names one of ringi's approval requests in In-Reply-To/References."""
        return self.wf.tokens.answered(s, answered_ids(mail)) is not None

    def handle(self, s: Session, mail: ParsedMail, token: str | None,
               inbound_id: int | None = None, checked: TokenCheck | None = None) -> str:
        """Apply the decision or send a clear error; returns the intake outcome line.

        Without `token` the reply is known by the approval request it answers (its
        In-Reply-To/References, most recent first) and checked exactly the same way: the
        asked approver or their proxy, a pending step, a token neither used nor expired.
        The reply's attachments are added to the case only with a decision that counts;
        a refused reply's error mail names each of them as not added. `checked`: the token
        already looked up (a digest reply's line, daemon.cases.digestreplies).
        """
        now = self.wf.clock.now()
        # First, before reading the token, the step or the sender: while a reorganisation's
        # commit or rollback runs this waits for it, and then reads what it left.
        reorg = None
        if inbound_id is not None:
            reorg = in_progress(s)
            reread_directory(s)  # rows read before a wait may predate the commit
        sender = member_by_email(s, mail.from_addr) if mail.from_addr else None
        locale = sender.locale if sender else "en"
        check = checked or (self.wf.tokens.check(s, token, now) if token is not None else
                            self.wf.tokens.check_answered(s, answered_ids(mail), now))
        row = check.row

        def refuse(problem: str, **extra: object) -> str:
            log.info("reply from %s refused: %s", mail.from_addr, problem)
            case = s.get(Case, row.case_id) if row else None
            self.wf.notifier.to_address(
                s, "reply_error", mail.from_addr, locale,
                {"problem": problem, "number": case.number if case else None,
                 "documents": not_added(mail.attachments, "refused"),
                 **extra},
                case, in_reply_to=mail.message_id,
            )
            return f"reply refused: {problem}"

        if row is None:
            return refuse("unknown_token")
        case = s.get(Case, row.case_id)
        step = s.get(CaseStep, row.step_id)
        if case is None or step is None:
            return refuse("unknown_token")
        asked = member(s, row.person_id)
        proxy_for = None
        if sender is not None and sender.id != row.person_id and asked is not None and \
                any(p.id == sender.id for p in proxies_of(s, asked.id, self.wf.day_of(now))):
            proxy_for = asked  # a registered proxy of the asked approver may decide
        if sender is None or (sender.id != row.person_id and proxy_for is None):
            return refuse("not_asked",
                          asked=person_name(s, row.person_id, locale) if asked else row.person_id)
        if reorg is not None and check.problem is None and step.state == StepState.PENDING:
            return self._keep(s, mail, reorg, case, sender.locale, inbound_id or 0)
        if check.problem in (TokenProblem.USED, TokenProblem.REVOKED) or \
                step.state != StepState.PENDING or case.state not in DECIDABLE:
            return refuse("moved_on", **self._moved_on(s, case, step, locale))
        if check.problem == TokenProblem.EXPIRED:
            self.wf.tokens.revoke_step(s, step.id, now)
            self.wf.ask(s, case, step, sender, note="expired")
            return refuse("expired")
        parsed = parse_decision(mail.text, (mail.from_name, sender.person.name,
                                            sender.person.name_ja))
        if parsed is None:
            return refuse("no_decision")
        if parsed.decision == Decision.HOLD and case.state == CaseState.ON_HOLD:
            return refuse("already_on_hold")
        # HOLD keeps the request open: the same mail can still be answered later.
        if parsed.decision != Decision.HOLD and not self.wf.tokens.consume(s, row, now):
            return refuse("moved_on", **self._moved_on(s, case, step, locale))
        notes = self.wf.documents.attach(s, self.wf, case, mail.attachments, Stage(
            f"decision:{parsed.decision.value}", sender, step.id, inbound_id))
        self.decisions.decide(s, case, step, sender, parsed.decision.value, parsed.reason,
                              proxy_for=proxy_for, documents=notes)
        by = f" (proxy for {proxy_for.id})" if proxy_for else ""
        return f"{case.number}: {parsed.decision.value} by {sender.id}{by}"

    def _keep(self, s: Session, mail: ParsedMail, reorg: Reorganisation, case: Case,
              locale: str, inbound_id: int) -> str:
        """During a reorganisation the reply waits; it is processed again when the change
        ends, and applies only if its author is still that step's approver."""
        if s.scalar(select(ReorgKeptReply.id).where(ReorgKeptReply.inbound_id == inbound_id)):
            return f"{case.number}: reply already kept"
        s.add(ReorgKeptReply(reorg_id=reorg.id, inbound_id=inbound_id, author=mail.from_addr,
                             kept_at=self.wf.clock.now()))
        self.wf.record(s, case, "reply kept", member_by_email(s, mail.from_addr),
                       detail=f"reorganisation {reorg.id} in progress: the reply is applied "
                       "when it ends, if its author is still this step's approver")
        self.wf.notifier.to_address(s, "reply_kept", mail.from_addr, locale,
                                    {"number": case.number, "reorganisation": reorg.id}, case,
                                    in_reply_to=mail.message_id)
        return f"{case.number}: reply kept until reorganisation {reorg.id} ends"

    def _moved_on(self, s: Session, case: Case, step: CaseStep, locale: str) -> dict[str, object]:
        """"Already approved by X at T": what happened to the step the reply was about."""
        at = step.decided_at or ""  # shown in the company's zone by the template
        return {
            "step_state": step.state,
            "decided_by": person_name(s, step.decided_by, locale),
            "decided_at": at,
            "case_state": case.state,
        }
