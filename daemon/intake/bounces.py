"""Bounces come home: a delivery report about a mail ringi sent is matched, recorded, acted on.

Matching is strict, because a bounce changes who is asked to decide:
- by the return path the bounce was delivered to (`ringi+bounce-ID-MAC@`, its MAC checked:
  see daemon/outbox/returnpath.py), or
- by a Message-ID inside the report (the returned message or headers, In-Reply-To,
  References) of a mail ringi really sent *to an address the report says bounced*.
Anything else — a wrong MAC, an unknown Message-ID, a known one reported for another
address — is logged and ignored. A bounce is never answered: nothing here mails its sender.
Each mail and action (failed, delayed...) is recorded once in `bounces`; a repeat is noted in
the intake's outcome and changes nothing. Only a failure acts: a delay is recorded only.
A failed execution request (sent by daemon/execution/sender.py with its own return path) is
told to the requester and the administrator: it may not have been executed.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.cases.bounces import execution_bounced, reroute_bounced_request
from daemon.cases.workflow import Workflow
from daemon.directory.lookup import member, member_by_email, primary_email
from daemon.notify.alerts import AdminAlerts
from daemon.outbox.returnpath import ReturnPaths
from daemon.parsing.dsn import BounceReport, RecipientStatus, parse_bounce, sanitise
from daemon.parsing.message import ParsedMail
from daemon.store.models import Bounce, Case, InboundMessage, OutboundMail

log = logging.getLogger(__name__)

# Answers to whoever wrote in: their bounces are backscatter of forged senders, not news.
_NO_ALERT = ("unknown_sender", "request_error", "reply_error", "help", "form",
             "command_reply", "relation_reply", "relation_confirm", "admin_alert")


class BounceHandler:
    def __init__(self, wf: Workflow, alerts: AdminAlerts, paths: ReturnPaths) -> None:
        self.wf = wf
        self.alerts = alerts
        self.paths = paths

    def addressed(self, rcpts: list[str]) -> bool:
        """Delivered to one of our return paths (whatever the mail is)."""
        return any(self.paths.is_return_path(r) for r in rcpts)

    def handle(self, s: Session, mail: ParsedMail, rcpts: list[str],
               inbound_id: int) -> str | None:
        """The intake outcome for a bounce, or None if this is no bounce (the caller goes on
        as before: an auto-reply is ignored, anything else is read as usual)."""
        row = s.get(InboundMessage, inbound_id)
        report = parse_bounce(mail.message, mail.subject, row.envelope_from if row else None)
        if report is None:
            if self.addressed(rcpts):
                return "ignored, not answered: mail to a return path that is no delivery " \
                       f"report ({mail.auto_reason or 'not automatic'})"
            return None
        found = self._match(s, report, rcpts)
        if isinstance(found, str):  # the intake's own log line says why; a forgery is louder
            if "wrong" in found:
                log.warning("bounce from %s ignored: %s", sanitise(report.reporter, 100), found)
            return f"ignored, not answered: bounce {found}"
        out, by = found
        entry = self._entry(report, out, by)
        action = entry.action if entry.action in ("failed", "delayed") else \
            sanitise(entry.action, 16) or "failed"
        earlier = s.scalar(select(Bounce).where(Bounce.outbound_mail_id == out.id,
                                                Bounce.action == action))
        if earlier is not None:
            return (f"bounce ({action}) of outbound mail {out.id} already recorded from "
                    f"intake {earlier.inbound_id}; not acted on again, not answered")
        outcome = self._act(s, out, entry, action, report, by)
        s.add(Bounce(received_at=self.wf.clock.now(), inbound_id=inbound_id,
                     outbound_mail_id=out.id, case_id=out.case_id,
                     recipient=(entry.recipient or out.recipient)[:320], action=action,
                     status=entry.status, diagnostic=entry.diagnostic,
                     reporter=report.reporter[:200], matched_by=by, outcome=outcome))
        s.flush()  # a concurrent duplicate fails here, and its intake item is retried
        return (f"bounce ({action}) of {out.template} mail {out.id} to {out.recipient} "
                f"recorded, not answered: {outcome}")

    def _match(self, s: Session, report: BounceReport,
               rcpts: list[str]) -> tuple[OutboundMail, str] | str:
        wrong_tag = False
        for rcpt in rcpts:
            if not self.paths.is_return_path(rcpt):
                continue
            mail_id = self.paths.mail_id(rcpt)
            out = s.get(OutboundMail, mail_id) if mail_id is not None else None
            if out is not None:
                return out, "return-path"
            wrong_tag = True
        reported = report.addresses()
        named: list[int] = []
        for message_id in report.original_ids:
            out = s.scalar(select(OutboundMail).where(OutboundMail.message_id == message_id))
            if out is not None and out.recipient in reported:
                return out, "message-id"
            named += [out.id] if out is not None else []
        if wrong_tag:
            return "to a return path whose tag is wrong (forged or damaged)"
        if named:
            return (f"names mail {named[0]} but not its recipient (it reports "
                    f"{sanitise(', '.join(sorted(reported)), 200) or 'no address'})")
        return "matches no mail ringi sent"

    @staticmethod
    def _entry(report: BounceReport, out: OutboundMail, by: str) -> RecipientStatus:
        """The report's line for this mail's recipient (by return path: any line — the
        recipient may have been forwarded); a failure wins over a delay."""
        mine = [r for r in report.recipients if out.recipient in (r.recipient, r.original)]
        lines = mine or (list(report.recipients) if by == "return-path" else [])
        order = {"failed": 0, "delayed": 1}
        lines.sort(key=lambda r: order.get(r.action, 2))
        return lines[0] if lines else RecipientStatus(out.recipient, "", "failed", "", "")

    def _act(self, s: Session, out: OutboundMail, entry: RecipientStatus, action: str,
             report: BounceReport, by: str) -> str:
        case = s.get(Case, out.case_id) if out.case_id is not None else None
        who = member_by_email(s, out.recipient)
        happened = {"failed": "bounced", "delayed": "is delayed"}.get(action, f"reported {action}")
        why = (f"The {out.template} mail to {out.recipient} {happened}: "
               f"{entry.status or 'no status'} {entry.diagnostic}".strip()
               + f" (reported by {report.reporter or 'an unnamed server'}; matched by {by})")
        if case is not None:
            kind = {"failed": "bounced", "delayed": "delivery_delayed"}.get(action,
                                                                              "delivery_report")
            self.wf.record(s, case, kind, who, detail=sanitise(why, 1000))
        if action != "failed":
            return "recorded only"
        if out.template == "approval_request" and case is not None:
            return reroute_bounced_request(self.wf, self.alerts, s, case, out, why)
        if out.template == "execution_request" and case is not None:
            return execution_bounced(self.wf, s, case, out, why)
        admin = member(s, self.wf.cfg.workflow.admin)
        if out.template in _NO_ALERT or (admin and primary_email(s, admin.id) == out.recipient):
            # Never an alert about an alert (or about mail to the administrator): no loop.
            log.error("bounce not told to anyone: %s", sanitise(why))
            return "recorded only (nobody to tell)"
        subject = f"{case.number + ': ' if case else ''}{out.template} mail to " \
                  f"{out.recipient} bounced"
        self.alerts.tell(s, f"bounce:mail:{out.id}", subject,
                         f"{why}\n\n{who.person.name if who else out.recipient} did not get "
                         "this notice. Check the address in the directory.", case=case)
        return "the administrator is told"
