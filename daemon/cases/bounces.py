"""What a bounce changes in a case: a bounced approval request must not wait in silence.

"Bounced" covers both ways an approver turns out unreachable: a delivery report about the
request (daemon/intake/bounces.py), and the relay refusing it for good when ringi sends it
(a dead outbound mail: daemon/notify/deadletters.py calls `reroute_bounced_request` with
`how="was refused"`). Both take the same path below.

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
from daemon.store.condition_models import Execution
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
                            mail: OutboundMail, why: str, how: str = "bounced") -> str:
    """Ask the proxy (or the administrator) now; returns what was done, for the record.

    `how` says what happened to the request ("bounced", "was refused"), in the case history
    and the alerts."""
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
                    f"{mail.recipient} {how}",
                    f"{why}\n\n{name} must approve case {case.number} together with others, "
                    "so nobody can stand in. Fix the address in the directory, or replace "
                    "the approver in the case's route.", case=case)
        return "all-of ask: the administrator is told to fix the address or the route"
    asked = {o.approver_id for o in wf.pending_steps(s, case) if o.slot == step.slot}
    targets: list[Member] = [p for p in proxies_of(s, step.approver_id, wf.today())
                             if p.person.active and p.id not in asked]
    role = "registered proxy"
    if not targets:
        admin = member(s, wf.cfg.workflow.admin)
        if admin is not None and admin.id not in asked:
            targets, role = [admin], "administrator"
    if not targets:
        alerts.tell(s, f"bounce:step:{step.id}", f"{case.number}: approval request to "
                    f"{mail.recipient} {how}", f"{why}\n\nNobody else can be asked for "
                    f"{name}'s step of case {case.number}. Fix the address in the directory.",
                    case=case)
        wf.record(s, case, "escalation", None, detail=f"the approval request to {name} "
                  f"{how}, but there is no proxy and no administrator to ask instead")
        return "nobody else to ask; the administrator is told"
    if step.mode == "single":
        step.mode = "any"  # now either of them may decide
    for target in targets:
        new = wf.new_step(s, case, target, slot=step.slot, mode="any", phase=step.phase,
                          step_name=step.step_name, pos=step.pos, kind="escalation",
                          resolver=role)
        wf.record(s, case, "escalated", target,
                  detail=f"the approval request to {name} {how}; {role} asked at once")
        display = approver.display_name(target.locale) if approver else name
        wf.ask(s, case, new, target, note="bounced", note_detail=display)
    return f"{role} asked at once: " + ", ".join(t.person.name for t in targets)


def execution_bounced(wf: Workflow, s: Session, case: Case, mail: OutboundMail,
                      why: str) -> str:
    """An execution request came back: the relay took it, but the destination may never
    have seen it, so it may not have been executed. The requester and the administrator are
    told (the bounce is on the case already); the execution's record says so too."""
    ex = s.scalar(select(Execution).where(Execution.mail_id == mail.id))
    if ex is not None:
        ex.reason, ex.updated_at = "bounced", wf.clock.now()
        ex.detail = f"{ex.detail}; the request bounced: {why}"[:4000]
    extra = {"error": why, "attempts": 1, "item": None, "bounced": True}
    wf.tell_requester(s, case, "execution_failed", {**extra, "admin": False})
    admin = member(s, wf.cfg.workflow.admin)
    if admin is not None and admin.id not in (case.requester_id, case.entered_by_id):
        wf.send(s, "execution_failed", admin, case, {**extra, "admin": True})
    return "the requester and the administrator are told it may not have been executed"
