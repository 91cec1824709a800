"""Case lifecycle: open, route to the next approver, record decisions, report results.

Everything here runs inside the caller's transaction together with the work item that
triggered it, so a case and its mails appear exactly once or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.cases.blobs import BlobStore
from daemon.cases.casetypes import CaseType, CaseTypeRegistry
from daemon.cases.numbering import next_number
from daemon.cases.states import CaseState, StepState
from daemon.clock import Clock
from daemon.config import Config
from daemon.directory.lookup import Member, member
from daemon.notify.compose import decision_link, thread_id_for
from daemon.notify.notifier import Notifier
from daemon.notify.views import case_view, who
from daemon.parsing.message import Attachment as MailAttachment
from daemon.routing.resolvers import Resolver
from daemon.security.tokens import TokenService
from daemon.store.models import Attachment, Case, CaseEvent, CaseStep


@dataclass(frozen=True)
class StoredDocument:
    """A document already written to the blob store (e.g. a drop-folder bundle's file)."""

    filename: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class NewRequest:
    requester: Member
    case_type: CaseType
    title: str
    fields: dict[str, Any]
    attachments: tuple[MailAttachment, ...] = ()
    documents: tuple[StoredDocument, ...] = ()
    message_id: str | None = None
    inbound_id: int | None = None
    entered_by: Member | None = None
    channel: str = "email"
    extra: dict[str, Any] = field(default_factory=dict)


class Workflow:
    def __init__(
        self,
        cfg: Config,
        clock: Clock,
        types: CaseTypeRegistry,
        tokens: TokenService,
        notifier: Notifier,
        resolver: Resolver,
        blobs: BlobStore,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.types = types
        self.tokens = tokens
        self.notifier = notifier
        self.resolver = resolver
        self.blobs = blobs

    # --- history ---------------------------------------------------------------------------

    def record(
        self,
        s: Session,
        case: Case,
        kind: str,
        actor: Member | None,
        detail: str = "",
        decision: str | None = None,
        reason: str | None = None,
    ) -> None:
        now = self.clock.now()
        s.add(CaseEvent(
            case_id=case.id, at=now, kind=kind, actor_id=actor.id if actor else None,
            actor=actor.snapshot() if actor else {}, decision=decision, reason=reason,
            detail=detail,
        ))
        case.updated_at = now

    def send(
        self, s: Session, template: str, to: Member, case: Case,
        extra: dict[str, Any] | None = None, token: str | None = None,
    ) -> None:
        view = case_view(s, case, self.types, to.locale)
        ctx: dict[str, Any] = {"view": view, "recipient": to.display_name(to.locale),
                               **(extra or {})}
        self.notifier.to_member(s, template, to, ctx, case, reply_token=token)

    # --- lifecycle -------------------------------------------------------------------------

    def open_case(self, s: Session, req: NewRequest) -> Case:
        now = self.clock.now()
        number = next_number(s, self.cfg.cases.number_format, now)
        case = Case(
            number=number, case_type=req.case_type.name, title=req.title,
            requester_id=req.requester.id,
            entered_by_id=req.entered_by.id if req.entered_by else None,
            state=CaseState.RECEIVED, fields=req.fields, created_at=now, updated_at=now,
            thread_id=thread_id_for(number, self.cfg.mail.domain),
            request_message_id=req.message_id, source_inbound_id=req.inbound_id,
        )
        s.add(case)
        s.flush()
        docs = [StoredDocument(a.filename, a.content_type, len(a.data), self.blobs.put(a.data))
                for a in req.attachments]
        for doc in [*docs, *req.documents]:
            s.add(Attachment(case_id=case.id, added_at=now, filename=doc.filename,
                             content_type=doc.content_type, size=doc.size, sha256=doc.sha256))
        count = len(docs) + len(req.documents)
        self.record(s, case, "received", req.entered_by or req.requester,
                    detail=f"{req.case_type.name} request received by {req.channel}"
                    + (f" with {count} attachment(s)" if count else ""))
        approver = self._route(s, case, req.requester)
        self.send(s, "ack", req.requester, case,
                  {"next": who(approver, req.requester.locale) if approver else None})
        if approver is None:
            self._finish(s, case)
        return case

    def _route(self, s: Session, case: Case, last_actor: Member) -> Member | None:
        """Ask the next approver, or return None when nobody is left to ask."""
        res = self.resolver.resolve(s, last_actor.id)
        self.record(s, case, "routed", None, detail=f"{res.resolver}: {res.explanation}")
        if res.approver is None:
            return None
        seq = (s.scalar(select(func.max(CaseStep.seq)).where(CaseStep.case_id == case.id))
               or 0) + 1
        step = CaseStep(case_id=case.id, seq=seq, resolver=res.resolver,
                        approver_id=res.approver.id, state=StepState.PENDING,
                        asked_at=self.clock.now())
        s.add(step)
        s.flush()
        case.state = CaseState.IN_REVIEW
        self.ask(s, case, step, res.approver)
        return res.approver

    def ask(self, s: Session, case: Case, step: CaseStep, approver: Member,
            note: str = "") -> None:
        token = self.tokens.issue(s, case.id, step.id, approver.id, self.clock.now())
        self.record(s, case, "asked", approver, detail=f"approval requested (step {step.seq})")
        subject_hint = f"[{case.number}] {case.title} [#{token}]"
        links = {w: decision_link(self.cfg.mail, token, subject_hint, w)
                 for w in ("APPROVE", "REJECT")}
        self.send(s, "approval_request", approver, case,
                  {"token": token, "links": links, "note": note,
                   "expires": (self.clock.now() + self.tokens.ttl).strftime("%Y-%m-%d %H:%M UTC")},
                  token=token)

    def _finish(self, s: Session, case: Case) -> None:
        case.state = CaseState.APPROVED
        self.record(s, case, "approved", None, detail="every required approver has approved")
        requester = member(s, case.requester_id)
        if requester is not None:
            self.send(s, "approved", requester, case)

    def decide(
        self, s: Session, case: Case, step: CaseStep, actor: Member, decision: str, reason: str
    ) -> None:
        now: datetime = self.clock.now()
        step.decided_at = now
        step.decided_by = actor.id
        step.reason = reason or None
        self.record(s, case, "decision", actor, decision=decision, reason=reason or None,
                    detail=f"step {step.seq} decided by reply")
        requester = member(s, case.requester_id)
        if decision == "approve":
            step.state = StepState.APPROVED
            nxt = self._route(s, case, actor)
            self.send(s, "decision_confirmed", actor, case,
                      {"decision": decision, "reason": reason,
                       "next": who(nxt, actor.locale) if nxt else None})
            if nxt is None:
                self._finish(s, case)
            elif requester is not None:
                self.send(s, "progress", requester, case,
                          {"by": who(actor, requester.locale),
                           "next": who(nxt, requester.locale)})
            return
        step.state = StepState.REJECTED
        case.state = CaseState.REJECTED
        self.record(s, case, "rejected", actor, detail="returned to the requester",
                    reason=reason or None)
        self.send(s, "decision_confirmed", actor, case,
                  {"decision": decision, "reason": reason, "next": None})
        if requester is not None:
            self.send(s, "rejected", requester, case,
                      {"by": who(actor, requester.locale), "reason": reason})
