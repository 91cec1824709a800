"""Out-of-office replies are a signal: the asked approver is away, so their proxy is asked now.

An automatic reply (daemon/parsing/message.py classifies it) counts only when it answers one
of ringi's approval requests and comes from the asked approver's own address:
- it names the request: delivered to the request's return path (its MAC checked, see
  daemon/outbox/returnpath.py; RFC 3834 responders answer there), or to its `+token` reply
  address, or carrying its token in the subject, or naming its Message-ID in
  In-Reply-To/References (daemon/security/tokens.py keeps that map);
- its From is one of the asked approver's addresses (and authenticated, where the
  configuration asks for it).
Then, once per ask (`case_steps.away_at`), it is recorded on the case and the approver's
registered proxies valid today are asked at once, as escalation asks them
(daemon/cases/escalation.py), and the requester is told. Anything else is left to the caller,
which ignores it as before. An auto-reply is never answered: nothing here mails its sender.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from daemon.cases.escalation import PROXY, ask_beside, claim, proxies_today
from daemon.cases.states import CaseState, StepState
from daemon.cases.workflow import Workflow
from daemon.config import MailConfig
from daemon.directory.lookup import member_by_email
from daemon.outbox.returnpath import ReturnPaths
from daemon.parsing.authresults import verify_message
from daemon.parsing.message import OUT_OF_OFFICE, ParsedMail, answered_ids
from daemon.store.models import Case, CaseStep, OutboundMail, ReplyToken
from daemon.store.reorg_models import in_progress

log = logging.getLogger(__name__)

NOTICE = "proxy_asked"  # the requester's mail: the approver is away, their proxy is asked


class AwayHandler:
    def __init__(self, wf: Workflow, mail_cfg: MailConfig) -> None:
        self.wf = wf
        self.mail_cfg = mail_cfg

    def handle(self, s: Session, mail: ParsedMail, rcpts: list[str], token: str | None,
               paths: ReturnPaths | None) -> str | None:
        """The intake outcome for an out-of-office reply to an approval request, or None
        when this mail is none (the caller goes on as before)."""
        if mail.auto_reason != OUT_OF_OFFICE or mail.sender_problem or not mail.from_addr:
            return None
        found = self._match(s, mail, rcpts, token, paths)
        if found is None:
            return None
        row, how = found
        sender = member_by_email(s, mail.from_addr)
        if sender is None or sender.id != row.person_id:
            return None  # not the asked approver's own server: nothing to learn from it
        if self.mail_cfg.sender_auth == "authentication-results" and not verify_message(
                mail.message, mail.from_addr, self.mail_cfg.trusted_authserv_ids).ok:
            return None
        case, step = s.get(Case, row.case_id), s.get(CaseStep, row.step_id)
        if case is None or step is None:
            return None
        name = sender.person.name
        if step.state != StepState.PENDING or \
                case.state not in (CaseState.IN_REVIEW, CaseState.ON_HOLD):
            return f"ignored, not answered: out-of-office reply from {name} to a request " \
                   f"of {case.number} that no longer waits"
        if not claim(self.wf, s, step, "away_at"):
            return f"{case.number}: out-of-office reply from {name} already recorded for " \
                   "this request; nothing more done, not answered"
        log.info("%s: out-of-office reply from %s (matched by %s)", case.number, name, how)
        detail = f"out of office: {name} (an automatic reply to the approval request, " \
                 f"matched by {how})"
        asked = {o.approver_id for o in self.wf.pending_steps(s, case) if o.slot == step.slot}
        targets = [p for p in proxies_today(self.wf, s, sender) if p.id not in asked]
        why = "no registered proxy to ask" if not targets else \
            "a reorganisation is under way" if in_progress(s) is not None else \
            "the request was already escalated" if not claim(self.wf, s, step,
                                                             "escalated_at") else None
        if why is not None:
            self.wf.record(s, case, "out_of_office", sender, detail=f"{detail}; {why}")
            return f"{case.number}: out-of-office reply from {name} recorded ({why}), " \
                   "not answered"
        self.wf.record(s, case, "out_of_office", sender, detail=detail)
        ask_beside(self.wf, s, case, step, sender, targets, PROXY,
                   f"{name} is out of office", note="away")
        self.wf.tell_requester(s, case, NOTICE, by=sender, asked=targets)
        names = ", ".join(t.person.name for t in targets)
        return f"{case.number}: out-of-office reply from {name} recorded, not answered; " \
               f"{PROXY} asked at once: {names}"

    def _match(self, s: Session, mail: ParsedMail, rcpts: list[str], token: str | None,
               paths: ReturnPaths | None) -> tuple[ReplyToken, str] | None:
        """The token of the approval request this auto-reply answers, and how it was known."""
        tokens = self.wf.tokens
        for rcpt in rcpts if paths is not None else []:
            assert paths is not None
            mail_id = paths.mail_id(rcpt)
            out = s.get(OutboundMail, mail_id) if mail_id is not None else None
            if out is not None and out.template == "approval_request" and \
                    (row := tokens.answered(s, [out.message_id])) is not None:
                return row, "return path"
        if (row := tokens.answered(s, answered_ids(mail))) is not None:
            return row, "In-Reply-To/References"
        if token and (row := tokens.check(s, token, self.wf.clock.now()).row) is not None:
            return row, "reply token"
        return None

