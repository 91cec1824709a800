"""What a bounce changes in a case: a bounced approval request must not wait in silence.

The approver never saw the request, so the case would sit until the reminder (which bounces
too) and the escalation days later. Instead the step is escalated at once, the way the timers
escalate a late step (daemon/cases/timers.py): the approver's registered proxy is asked in an
"any" step beside them; without one, the administrator is asked. The bounced approver's own
token stays valid: the address may work again (a full mailbox) or the approver may answer from
another client, and the step is "any", so whoever decides first counts. The step's
`escalated_at` is claimed, so a repeated bounce, a reminder's bounce and the later timer
escalation never ask anyone twice.
"""

from __future__ import annotations

import email
import email.policy
import re

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from daemon.cases.states import CaseState, StepState
from daemon.cases.workflow import Workflow
from daemon.directory.lookup import Member, member, primary_email, proxies_of
from daemon.notify.alerts import AdminAlerts
from daemon.store.db import rowcount
from daemon.store.models import Case, CaseStep, OutboundMail, ReplyToken

_REPLY_TOKEN = re.compile(r"\+([a-z2-7]{32})@", re.I)


def asked_step(wf: Workflow, s: Session, mail: OutboundMail) -> CaseStep | None:
    """The step an approval request asked for: by its reply token, else by its recipient."""
    try:
        headers = email.message_from_bytes(mail.raw, policy=email.policy.compat32)
        m = _REPLY_TOKEN.search(str(headers.get("Reply-To", "")))
    except Exception:
        m = None
    if m:
        step_id = s.scalar(select(ReplyToken.step_id).where(
            ReplyToken.token_hash == wf.tokens.digest(m.group(1))))
        if step_id is not None:
            return s.get(CaseStep, step_id)
    case = s.get(Case, mail.case_id) if mail.case_id is not None else None
    for step in reversed(wf.pending_steps(s, case) if case else []):
        if primary_email(s, step.approver_id) == mail.recipient:
            return step
    return None


def _claim(wf: Workflow, s: Session, step: CaseStep) -> bool:
    won = rowcount(s.execute(update(CaseStep).where(
        CaseStep.id == step.id, CaseStep.escalated_at.is_(None))
        .values(escalated_at=wf.clock.now()).execution_options(synchronize_session=False)))
    if won:
        s.refresh(step)
    return won == 1


def reroute_bounced_request(wf: Workflow, alerts: AdminAlerts, s: Session, case: Case,
                            mail: OutboundMail, why: str) -> str:
    """Ask the proxy (or the administrator) now; returns what was done, for the record."""
    step = asked_step(wf, s, mail)
    if step is None or step.state != StepState.PENDING or \
            case.state not in (CaseState.IN_REVIEW, CaseState.ON_HOLD):
        return "the request no longer waits for a decision; nothing to reroute"
    if not _claim(wf, s, step):
        return "this step was already escalated; nobody is asked again"
    approver = member(s, step.approver_id)
    name = approver.person.name if approver else step.approver_id
    if step.mode == "all":
        # Everyone must approve: a stand-in cannot replace one of them; the route needs editing.
        alerts.tell(s, f"bounce:step:{step.id}", f"{case.number}: approval request to "
                    f"{mail.recipient} bounced",
                    f"{why}\n\n{name} must approve case {case.number} together with others, "
                    "so nobody can stand in. Fix the address in the directory, or replace "
                    "the approver in the case's route.", case=case)
        return "all-of ask: the administrator is told to fix the address or the route"
    asked = {o.approver_id for o in wf.pending_steps(s, case) if o.slot == step.slot}
    today = wf.clock.now().date()
    targets: list[Member] = [p for p in proxies_of(s, step.approver_id, today)
                             if p.person.active and p.id not in asked]
    how = "registered proxy"
    if not targets:
        admin = member(s, wf.cfg.workflow.admin)
        if admin is not None and admin.id not in asked:
            targets, how = [admin], "administrator"
    if not targets:
        alerts.tell(s, f"bounce:step:{step.id}", f"{case.number}: approval request to "
                    f"{mail.recipient} bounced", f"{why}\n\nNobody else can be asked for "
                    f"{name}'s step of case {case.number}. Fix the address in the directory.",
                    case=case)
        wf.record(s, case, "escalation", None, detail=f"the approval request to {name} "
                  "bounced, but there is no proxy and no administrator to ask instead")
        return "nobody else to ask; the administrator is told"
    if step.mode == "single":
        step.mode = "any"  # now either of them may decide
    for target in targets:
        new = wf.new_step(s, case, target, slot=step.slot, mode="any", phase=step.phase,
                          step_name=step.step_name, pos=step.pos, kind="escalation",
                          resolver=how)
        wf.record(s, case, "escalated", target,
                  detail=f"the approval request to {name} bounced; {how} asked at once")
        display = approver.display_name(target.locale) if approver else name
        wf.ask(s, case, new, target, note="bounced", note_detail=display)
    return f"{how} asked at once: " + ", ".join(t.person.name for t in targets)
