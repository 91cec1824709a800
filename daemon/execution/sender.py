"""Send due execution requests: the processor of the `execution` queue.

The request mail (template plus attached data) is built once and stored before the first
attempt, so every retry sends the same bytes with the same Message-ID and a destination can
recognise a repeat. This runner delivers it itself instead of through the outbox: the
execution is "sent" only once the relay has taken it, and its failures follow this queue's
retry and dead-letter rules. When it finally fails, the requester and the administrator are
told it was not executed. It leaves with its own VERP return path like every other mail, so a
bounce from the destination's server is matched to the case (daemon/intake/bounces.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any, NoReturn

import jinja2
from sqlalchemy.orm import Session

from daemon.cases.states import CaseState
from daemon.cases.workflow import Workflow
from daemon.clock import Clock
from daemon.directory.lookup import member, primary_email
from daemon.execution.calendar import next_allowed
from daemon.execution.destinations import Destination
from daemon.execution.executor import ExecState, Executions
from daemon.execution.formats import Record, render
from daemon.notify.compose import Composer
from daemon.notify.templates import TemplateError, Templates
from daemon.notify.views import case_view, format_value, local_time, who
from daemon.outbox.outbox import store_mail
from daemon.outbox.returnpath import ReturnPaths
from daemon.outbox.transport import Transport
from daemon.store.condition_models import Execution
from daemon.store.db import Store
from daemon.store.models import Case, OutboundMail
from daemon.workqueue.queue import Claimed, PermanentError, Queues, TemporaryError, WorkQueue

log = logging.getLogger(__name__)


class ExecutionSender:
    queue_name: str = Queues.EXECUTION

    def __init__(self, store: Store, queue: WorkQueue, executions: Executions,
                 templates: Templates, composer: Composer, transport: Transport,
                 clock: Clock, return_paths: ReturnPaths | None = None) -> None:
        self.store = store
        self.return_paths = return_paths  # VERP: a bounce names the request it is about
        self.queue = queue
        self.executions = executions
        self.wf: Workflow = executions.wf
        self.templates = templates
        self.composer = composer
        self.transport = transport
        self.clock = clock
        self.on_done: Callable[[], None] = lambda: None  # e.g. wake the outbox for notices

    def process(self, item: Claimed) -> None:
        try:
            prepared = self._prepare(item)
            if prepared is None:
                return
            recipient, raw, mail_id = prepared
            self.transport.send(recipient, raw, sender=self.return_paths.address(mail_id)
                                if self.return_paths else None)
        except Exception as exc:
            self._failed(item, exc)
        self._sent(item)
        self.on_done()

    def _prepare(self, item: Claimed) -> tuple[str, bytes, int] | None:
        """The stored request to send now (recipient, bytes, mail id); None when already
        sent or not yet open."""
        with self.store.transaction() as s:
            ex = s.get(Execution, item.ref_id)
            if ex is None:
                raise PermanentError(f"execution {item.ref_id} is missing")
            if ex.state == ExecState.SENT:
                self.queue.complete(s, item)
                return None
            dest = self.executions.destinations.by_name(ex.destination)
            if dest is None:
                raise PermanentError(f"destination {ex.destination!r} is no longer in "
                                     f"{self.executions.destinations.source}")
            now = self.clock.now()
            due = next_allowed(now, dest.calendar)
            if due > now:  # e.g. a retry that fell after closing time: wait for the opening
                ex.due_at, ex.updated_at = due, now
                self.queue.defer(s, item, due)
                return None
            if ex.mail_id is None:
                case = s.get(Case, ex.case_id)
                assert case is not None
                try:
                    msg = self.compose(s, case, ex, dest)
                except (UnicodeError, jinja2.TemplateError, TemplateError) as exc:
                    # The same case and rules would fail the same way on every retry.
                    raise PermanentError(f"the request could not be built: {exc}") from exc
                ex.mail_id = store_mail(s, self.queue, msg, "execution_request", case.id,
                                        queued=False).id
            mail = s.get(OutboundMail, ex.mail_id)
            if mail is None:
                raise PermanentError(f"stored request mail {ex.mail_id} is missing")
            return mail.recipient, mail.raw, mail.id

    def record_of(self, s: Session, case: Case, ex: Execution, locale: str) -> Record:
        requester = member(s, case.requester_id)
        ct = self.wf.types.get(case.case_type)
        order = [f.name for f in ct.fields] if ct else []
        names = [n for n in order if n in case.fields] + sorted(set(case.fields) - set(order))
        return Record(
            number=case.number, case_type=case.case_type, title=case.title,
            requester_id=case.requester_id,
            requester_name=requester.display_name(locale) if requester else "",
            requester_email=primary_email(s, case.requester_id) or "",
            requester_unit=requester.unit.id if requester and requester.unit else "",
            approved_at=ex.created_at, fields={n: case.fields[n] for n in names})

    def compose(self, s: Session, case: Case, ex: Execution, dest: Destination) -> EmailMessage:
        """The destination's mail in its language and template, its data attached."""
        loc = dest.locale
        record = self.record_of(s, case, ex, loc)
        data = render(record, dest.format,
                      dest.filename.format(number=case.number, type=case.case_type),
                      dest.encoding)
        requester = member(s, case.requester_id)
        ct = self.wf.types.get(case.case_type)
        kinds = {f.name: str(f.kind) for f in ct.fields} if ct else {}
        ctx: dict[str, Any] = {
            "case": case, "request_address": self.composer.cfg.request_address,
            "view": case_view(s, case, self.wf.types, loc), "recipient": dest.title,
            "destination": {"name": dest.name, "title": dest.title, "address": dest.address},
            "requester": who(requester, loc) if requester else case.requester_id,
            "requester_email": record.requester_email,
            "approved": local_time(ex.created_at, ex.timezone, loc),
            "attachment": data.filename if data else None, "data": record.nested(),
            "fields": {name: format_value(kinds.get(name, ""), value)
                       for name, value in record.fields.items()},  # as people read them
        }
        rendered = self.templates.render(dest.template, loc, ctx)
        # The destination's questions about the order should reach the person who asked.
        return self.composer.compose(rendered, dest.address, dest.title,
                                     reply_to=record.requester_email or None,
                                     attachments=[data] if data else ())

    def _sent(self, item: Claimed) -> None:
        with self.store.transaction() as s:
            ex = s.get(Execution, item.ref_id)
            case = s.get(Case, ex.case_id) if ex else None
            if ex is None or case is None:
                return
            now = self.clock.now()
            ex.state, ex.sent_at, ex.updated_at, ex.reason = ExecState.SENT, now, now, ""
            mail = s.get(OutboundMail, ex.mail_id) if ex.mail_id else None
            if mail is not None:
                mail.sent_at = now
            if case.state == CaseState.APPROVED:
                case.state = CaseState.COMPLETED  # approved and executed (SPEC 3)
            self.wf.record(s, case, "execution", None,
                           detail=f"executed: execution request sent to {ex.destination} "
                           f"<{ex.address}>" + (f" as {mail.message_id}" if mail else ""))
            self.wf.tell_requester(s, case, "execution_sent")
            self.queue.complete(s, item)

    def _failed(self, item: Claimed, exc: Exception) -> NoReturn:
        """Retry a temporary failure; on the last attempt (or a permanent one) give up,
        tell the requester and the administrator, and let the item go dead."""
        if not isinstance(exc, TemporaryError | PermanentError):
            log.exception("execution %s: sending failed", item.ref_id)
        with self.store.transaction() as s:
            last = isinstance(exc, PermanentError) or \
                item.attempts >= self.queue.max_attempts(s, item)
            if last:
                self._give_up(s, item, exc)
        if last:
            self.on_done()
            raise PermanentError(f"not executed: {exc}", told=True) from exc
        raise TemporaryError(f"{type(exc).__name__}: {exc}") from exc

    def _give_up(self, s: Session, item: Claimed, exc: Exception) -> None:
        ex = s.get(Execution, item.ref_id)
        case = s.get(Case, ex.case_id) if ex else None
        if ex is None or case is None:
            return
        ex.state, ex.reason, ex.updated_at = ExecState.FAILED, "failed", self.clock.now()
        ex.detail = f"{ex.detail}; failed after {item.attempts} attempt(s): {exc}"
        self.wf.record(s, case, "execution", None,
                       detail=f"not executed: sending to {ex.destination or '-'} "
                       f"<{ex.address}> failed after {item.attempts} attempt(s): {exc}")
        extra = {"error": str(exc), "attempts": item.attempts, "item": item.id, "bounced": False}
        self.wf.tell_requester(s, case, "execution_failed", {**extra, "admin": False})
        admin = member(s, self.wf.cfg.workflow.admin)
        if admin is not None and admin.id not in (case.requester_id, case.entered_by_id):
            self.wf.send(s, "execution_failed", admin, case, {**extra, "admin": True})
