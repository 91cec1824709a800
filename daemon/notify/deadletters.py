"""Tell the administrator about every dead letter, once, with the command that retries it.

The work queue calls `DeadLetters` (as its dead-letter hook) in the transaction that marks
an item dead, so the alert exists iff the item is dead. Each item has its own alert key, so
a dead item is one mail however often it is retried and dies again the same day (answers to
senders outside the directory share one key: a day's undeliverable answers are one mail).
A mail that itself dead-letters is recorded on its case; when it was an administrator
alert, it is only logged: an alert about an undeliverable alert would loop.
An approval request the relay refused for good is the same news as a bounce — the approver
cannot be reached — so it goes through the bounce path's rerouting (`unreachable`: the proxy
or the administrator asked at once) in this same transaction; the step's escalation claim
makes a retried and again refused mail ask nobody twice.
"""

from __future__ import annotations

import logging
from typing import Protocol

from sqlalchemy.orm import Session

from daemon.directory.lookup import Member
from daemon.notify.alerts import AdminAlerts
from daemon.notify.notifier import ANSWER_TEMPLATES
from daemon.store.condition_models import Execution
from daemon.store.models import Case, InboundMessage, OutboundMail
from daemon.store.publication_models import Delivery
from daemon.store.reorg_models import ReorgCaseBackup
from daemon.workqueue.queue import DeadLetter, Queues

log = logging.getLogger(__name__)

ERROR_MAX = 1500  # characters of the last error quoted in the mail (the log has it whole)
ALERT_TEMPLATE = "admin_alert"
REQUEST_TEMPLATE = "approval_request"


class CaseRecorder(Protocol):
    """`Workflow.record`: one entry in a case's history."""

    def __call__(self, s: Session, case: Case, kind: str, actor: Member | None,
                 detail: str = "") -> None: ...


class Unreachable(Protocol):
    """`reroute_bounced_request` (daemon/cases/bounces.py) with its workflow and alerts."""

    def __call__(self, s: Session, case: Case, mail: OutboundMail, why: str,
                 how: str = "bounced") -> str: ...


def retry_command(item_id: int) -> str:
    return f"ringi queue retry {item_id}"


class DeadLetters:
    def __init__(self, alerts: AdminAlerts, record: CaseRecorder,
                 unreachable: Unreachable | None = None) -> None:
        self.alerts = alerts
        self.record = record
        self.unreachable = unreachable

    def __call__(self, s: Session, letter: DeadLetter) -> None:
        what, case = self.describe(s, letter)
        mail = s.get(OutboundMail, letter.ref_id) if letter.queue == Queues.OUTBOUND else None
        done = ""
        if letter.queue == Queues.OUTBOUND and mail is not None:
            mail.failed_at = self.alerts.clock.now()
            mail.error = letter.error[:ERROR_MAX]
            if case is not None:
                self.record(s, case, "mail failed", None,
                            detail=f"{what} was not delivered: {_last_line(letter.error)}")
            if case is not None and letter.permanent and self.unreachable is not None \
                    and mail.template == REQUEST_TEMPLATE:
                why = (f"The approval request to {mail.recipient} was refused by the relay: "
                       f"{_last_line(letter.error)}")
                done = self.unreachable(s, case, mail, why, how="was refused")
            if mail.template == ALERT_TEMPLATE:
                log.error("administrator alert %s (%s) could not be delivered and is "
                          "dead-lettered: %s; not alerted again (it would loop). Retry "
                          "with: %s", letter.ref_id, mail.subject, letter.error,
                          retry_command(letter.id))
                return
        key = f"dead:{letter.queue}:{letter.id}"
        if letter.queue == Queues.OUTBOUND and case is None and mail is not None \
                and mail.template in ANSWER_TEMPLATES:
            # Answers go to whatever address a mail came from: a stream of them bouncing must
            # not become a stream of alerts. The first of the day is mailed, the rest counted.
            key = "dead:outbound:answers"
            what += " (further undeliverable answers today are counted, not mailed)"
        how = ("failed permanently" if letter.permanent
               else f"failed {letter.attempts} time(s), the last allowed attempt")
        body = (f"Queue: {letter.queue}\nItem: {letter.id}\nWhat: {what}\n"
                f"It {how} and is now a dead letter; nothing retries it by itself.\n\n"
                f"Last error:\n  {_excerpt(letter.error)}\n\n"
                + (f"Meanwhile: {done}.\n\n" if done else "") +
                f"Once the cause is fixed, queue it again with:\n\n"
                f"  {retry_command(letter.id)}\n")
        self.alerts.tell(s, key, f"Dead letter: {what}", body, case=case)

    def describe(self, s: Session, letter: DeadLetter) -> tuple[str, Case | None]:
        """What the item was, in words an administrator recognises, and its case."""
        q, ref = letter.queue, letter.ref_id
        if q == Queues.INBOUND:
            row = s.get(InboundMessage, ref)
            if row is None:
                return f"intake {ref} (missing)", None
            case = s.get(Case, row.case_id) if row.case_id else None
            return f"intake {ref} ({row.channel}) from {row.envelope_from or '?'}", case
        if q == Queues.OUTBOUND:
            mail = s.get(OutboundMail, ref)
            if mail is None:
                return f"outgoing mail {ref} (missing)", None
            case = s.get(Case, mail.case_id) if mail.case_id else None
            return _with_case(f"{_mail_kind(mail.template)} to {mail.recipient or '?'}",
                              case), case
        if q == Queues.EXECUTION:
            ex = s.get(Execution, ref)
            case = s.get(Case, ex.case_id) if ex else None
            what = (f"execution request to {ex.destination} <{ex.address}>" if ex
                    else f"execution {ref} (missing)")
            return _with_case(what, case), case
        if q == Queues.REORG:
            b = s.get(ReorgCaseBackup, ref)
            case = s.get(Case, b.case_id) if b else None
            what = (f"reroute after reorganisation {b.reorg_id} (its new approver is not "
                    "asked until it runs)" if b else f"reroute {ref} (missing)")
            return _with_case(what, case), case
        if q == "publication":
            d = s.get(Delivery, ref)
            case = s.get(Case, d.case_id) if d else None
            what = f"publication delivery {d.name}" if d else f"delivery {ref} (missing)"
            return _with_case(what, case), case
        return f"{q} item for {ref}", None


def _mail_kind(template: str) -> str:
    return template.replace("_", " ") + " mail"


def _with_case(what: str, case: Case | None) -> str:
    return f"{what} for case {case.number}" if case is not None else what


def _last_line(error: str) -> str:
    """The message, not the traceback: the first line of what failed."""
    return error.strip().splitlines()[0][:300] if error.strip() else "unknown error"


def _excerpt(error: str) -> str:
    """The error itself; a traceback below it is in the log, not in the mail."""
    lines = error.strip().splitlines() or ["unknown error"]
    text = lines[0] if len(lines[0]) <= ERROR_MAX else lines[0][:ERROR_MAX] + " ..."
    return text + ("\n  (the daemon's log has the traceback)" if len(lines) > 1 else "")
