"""Turn workflow events into queued mails, in the recipient's language."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.cases.states import StepState
from daemon.config import MailConfig
from daemon.directory.lookup import Member, member_by_email, primary_email
from daemon.notify.compose import Composer, OutgoingFile
from daemon.notify.html import Route, route_of
from daemon.notify.templates import Templates
from daemon.notify.views import person_name
from daemon.outbox.outbox import store_mail
from daemon.store.models import Case, CaseStep, OutboundMail
from daemon.workqueue.queue import WorkQueue

log = logging.getLogger(__name__)

# Mails that answer an inbound mail: rate-limited per recipient so no loop can flood anyone.
ANSWER_TEMPLATES = ("request_error", "reply_error", "unknown_sender", "help", "form",
                    "command_reply", "conditions_confirm", "reply_kept", "relation_reply",
                    "relation_confirm", "digest_reply", "digest_setting")
# Every mail the workflow sends; checked at start so a missing translation stops the daemon
# before a case needs it.
REQUIRED_TEMPLATES = (*ANSWER_TEMPLATES, "ack", "approval_request", "decision_confirmed",
                      "progress", "approved", "rejected", "drop_rejected", "hold",
                      "returned", "reject_notice", "approval_undone", "cancelled", "notify",
                      "rejected_conditions", "reserved", "revision_request",
                      "execution_request", "execution_sent", "execution_failed",
                      "partner_delivery", "publication_notice", "admin_alert", "held",
                      "reassigned", "resumed", "reinstated", "relation_expiry", "proxy_asked",
                      "digest")


@dataclass(frozen=True)
class Gathered:
    """A mail held back by `Notifier.gathered`: what it would have said, and about what."""

    template: str
    context: dict[str, Any]
    case: Case | None


class Notifier:
    def __init__(
        self, templates: Templates, composer: Composer, queue: WorkQueue, mail: MailConfig
    ) -> None:
        self.templates = templates
        self.composer = composer
        self.queue = queue
        self.mail = mail
        # The case as its reader sees it (set by the workflow, which knows the case types):
        # a mail about a case that does not bring its own view gets one for its subject.
        self.view_of: Callable[[Session, Case, str], dict[str, Any]] | None = None
        # The titles of the route's phases still ahead of a case (set by the workflow).
        self.route_ahead: Callable[[Session, Case, str], tuple[str, ...]] | None = None
        self._gathering = threading.local()

    @contextmanager
    def gathered(self, templates: tuple[str, ...]) -> Iterator[list[Gathered]]:
        """Mails of `templates` queued by this thread meanwhile are handed back instead of
        sent: a digest reply answers its many decisions in one confirmation."""
        got: list[Gathered] = []
        self._gathering.now = (templates, got)
        try:
            yield got
        finally:
            self._gathering.now = None

    def to_member(
        self,
        s: Session,
        template: str,
        who: Member,
        context: dict[str, Any],
        case: Case | None = None,
        reply_token: str | None = None,
    ) -> None:
        address = primary_email(s, who.id)
        if address is None:
            log.error("%s has no email address; %s mail not sent", who.id, template)
            return
        self.to_address(s, template, address, who.locale, context, case,
                        name=who.display_name(who.locale), reply_token=reply_token)

    def to_address(
        self,
        s: Session,
        template: str,
        address: str,
        locale: str,
        context: dict[str, Any],
        case: Case | None = None,
        *,
        name: str = "",
        reply_token: str | None = None,
        in_reply_to: str | None = None,
        attachments: Sequence[OutgoingFile] = (),
    ) -> bool:
        """Queue one mail; answers are rate-limited per recipient. False if suppressed.

        With a `case` the mail is threaded into the case (References carry its root) and
        gets the case's view; a reader in the directory is greeted by name.
        """
        gathering = getattr(self._gathering, "now", None)
        if gathering is not None and template in gathering[0]:
            gathering[1].append(Gathered(template, context, case))
            return True
        if template in ANSWER_TEMPLATES and self._over_limit(s, address):
            log.warning("answer to %s suppressed: rate limit reached", address)
            return False
        if not name:
            known = member_by_email(s, address)
            name = known.display_name(locale) if known else ""
        ctx: dict[str, Any] = {"case": case, "request_address": self.mail.request_address,
                               "recipient": name, **context}
        if case is not None and "view" not in ctx and self.view_of is not None:
            ctx["view"] = self.view_of(s, case, locale)
        rendered = self.templates.render(template, locale, ctx)
        refs: tuple[str, ...] = ()
        if case is not None and case.request_message_id:
            refs = (case.request_message_id,)
        if in_reply_to:
            refs = (*refs, in_reply_to)
        msg = self.composer.compose(
            rendered, address, name,
            thread=case.thread_id if case else None,
            references=refs,
            reply_token=reply_token,
            attachments=attachments,
            route=self._route(s, case, address, ctx.get("view"), locale) if case else None,
            lang=locale,
        )
        store_mail(s, self.queue, msg, template, case.id if case else None, recipient=address)
        return True

    def _route(self, s: Session, case: Case, address: str, view: Any,
               locale: str) -> Route | None:
        """The HTML progress line: approvals counted in the view, open asks, phases ahead.

        Only for people in the directory: a partner's delivery notice names no approver in
        its text, so its HTML must not either."""
        if not self.mail.html or member_by_email(s, address) is None:
            return None
        asked = tuple(person_name(s, st.approver_id, locale) for st in s.scalars(
            select(CaseStep).where(CaseStep.case_id == case.id,
                                   CaseStep.state == StepState.PENDING)
            .order_by(CaseStep.seq)))
        ahead: tuple[str, ...] = ()
        if asked and self.route_ahead is not None:
            try:
                ahead = self.route_ahead(s, case, locale)
            except Exception:  # a drawing aid: never let it cost the mail
                log.exception("route ahead of case %s not drawn", case.number)
        return route_of(view, asked, ahead) or None

    def _over_limit(self, s: Session, address: str) -> bool:
        since = self.queue.clock.now() - timedelta(hours=1)
        sent = s.scalar(
            select(func.count()).select_from(OutboundMail).where(
                OutboundMail.recipient == address.lower(),
                OutboundMail.template.in_(ANSWER_TEMPLATES),
                OutboundMail.created_at >= since,
            )
        ) or 0
        return sent >= self.mail.error_replies_per_hour
