"""Inbound processing: parse, refuse robots, then dispatch to a reply or a request.

One claimed intake item is processed in one transaction with everything it causes (case,
history, queued mails) and the item's completion, so a crash repeats it whole or not at all.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from sqlalchemy.orm import Session

from daemon.cases.digestreplies import DigestReplies
from daemon.cases.droprequests import DropRequestHandler
from daemon.cases.replies import ReplyHandler
from daemon.cases.requests import RequestHandler, looks_japanese
from daemon.cases.versions import suspend_on_version
from daemon.config import MailConfig
from daemon.directory.lookup import member_by_email
from daemon.intake.away import AwayHandler
from daemon.intake.bounces import BounceHandler
from daemon.parsing.authresults import verify_message
from daemon.parsing.message import OUT_OF_OFFICE, ParsedMail, parse_mail
from daemon.routing.registry import StoredVersionError
from daemon.security.tokens import is_token, token_from_subject
from daemon.store.db import Store
from daemon.store.models import InboundMessage
from daemon.workqueue.queue import Claimed, PermanentError, Queues, WorkQueue

log = logging.getLogger(__name__)


def token_from_rcpts(mail_cfg: MailConfig, rcpts: list[str]) -> str | None:
    pattern = re.compile(
        rf"^{re.escape(mail_cfg.local_part)}\+([a-z2-7]+)@{re.escape(mail_cfg.domain)}$"
    )
    for rcpt in rcpts:
        m = pattern.match(rcpt.lower())
        if m and is_token(m.group(1)):
            return m.group(1)
    return None


class InboundProcessor:
    queue_name: str = Queues.INBOUND

    def __init__(
        self,
        store: Store,
        queue: WorkQueue,
        mail_cfg: MailConfig,
        requests: RequestHandler,
        replies: ReplyHandler,
        drops: DropRequestHandler,
    ) -> None:
        self.store = store
        self.queue = queue
        self.mail_cfg = mail_cfg
        self.requests = requests
        self.replies = replies
        self.drops = drops
        self.on_done: Callable[[], None] = lambda: None
        self.bounces: BounceHandler | None = None  # set by the app (daemon/intake/bounces.py)
        self.away = AwayHandler(replies.wf, mail_cfg)
        self.digests = DigestReplies(replies)  # several decisions in a reply to a digest

    def process(self, item: Claimed) -> None:
        try:
            self._process(item)
        except StoredVersionError as exc:
            # Rolled back; retrying meets the same version again. The cases on it are
            # suspended (history, administrator) and this input waits as a dead letter for
            # `ringi queue retry` once the case types are fixed.
            with self.store.transaction() as s:
                lines = suspend_on_version(self.replies.wf, s, exc)
            for line in lines:
                log.warning("%s", line)
            raise PermanentError(f"{exc}; the cases on it are suspended; retry this input "
                                 "once the case types are fixed", told=bool(lines)) from None

    def _process(self, item: Claimed) -> None:
        with self.store.transaction() as s:
            row = s.get(InboundMessage, item.ref_id)
            if row is None:
                raise PermanentError(f"intake {item.ref_id} is missing")
            if row.channel == "drop":
                outcome = self.drops.handle(s, row)
                origin = row.envelope_from
            else:
                mail = parse_mail(row.raw, row.envelope_from)
                outcome = self.dispatch(s, mail, list(row.envelope_to.get("rcpt", [])), row.id)
                origin = mail.from_addr or "?"
            row.outcome = outcome
            log.info("intake %s (%s) from %s: %s", row.id, row.channel, origin, outcome)
            self.queue.complete(s, item)
        self.on_done()

    def dispatch(self, s: Session, mail: ParsedMail, rcpts: list[str], inbound_id: int) -> str:
        token = token_from_rcpts(self.mail_cfg, rcpts) or token_from_subject(mail.subject)
        if mail.auto_reason == OUT_OF_OFFICE:
            # The asked approver's server says they are away: recorded, their proxy asked;
            # never answered. Any other out-of-office reply goes on to be ignored as before.
            away = self.away.handle(s, mail, rcpts, token,
                                    self.bounces.paths if self.bounces else None)
            if away is not None:
                return away
        if self.bounces is not None and (mail.auto_reason or self.bounces.addressed(rcpts)):
            # A bounce of ringi's own mail: matched, recorded, acted on; never answered.
            # First: a bounce is matched by its return path or the mail it quotes, never by
            # its From (MTAs write `From: MAILER-DAEMON` without a domain, or none at all).
            bounce_outcome = self.bounces.handle(s, mail, rcpts, inbound_id)
            if bounce_outcome is not None:
                return bounce_outcome
        if mail.sender_problem:
            # From/Sender name nobody (or more than one): nothing is decided, nothing is sent,
            # since every address in this mail is one we could not attribute.
            log.warning("intake refused, sender unclear: %s", mail.sender_problem)
            return f"refused, not answered: {mail.sender_problem}"
        if mail.auto_reason:
            return f"ignored, not answered: {mail.auto_reason}"
        if not mail.from_addr:
            return "ignored, not answered: no usable From address"
        if self.mail_cfg.sender_auth == "authentication-results":
            verdict = verify_message(mail.message, mail.from_addr,
                                     self.mail_cfg.trusted_authserv_ids)
            if not verdict.ok:
                # Not answered: the From address is exactly what we could not trust.
                log.warning("intake from %s not authenticated: %s", mail.from_addr, verdict.why)
                return f"refused, not answered: sender not authenticated ({verdict.why})"
        if token:
            return self.digests.handle(s, mail, token, inbound_id) or \
                self.replies.handle(s, mail, token, inbound_id)
        lost = self.digests.handle(s, mail, None, inbound_id)  # a digest's, token lost
        if lost is not None:
            return lost
        if self.replies.answers_request(s, mail):
            # The token was lost (plain address, subject edited), but the reply names the
            # approval request it answers: a reply, checked as one, never a new request.
            return self.replies.handle(s, mail, None, inbound_id)
        sender = member_by_email(s, mail.from_addr)
        if sender is None:
            locale = "ja" if looks_japanese(mail.subject + mail.text) else "en"
            self.requests.answer(s, mail, locale, "unknown_sender", address=mail.from_addr)
            return f"refused: unknown sender {mail.from_addr}"
        return self.requests.handle(s, mail, sender, inbound_id)
