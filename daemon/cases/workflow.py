"""Case lifecycle: open, route along the case's workflow version, ask, finish.

Everything here runs inside the caller's transaction together with the work item that
triggered it, so a case and its mails appear exactly once or not at all. Decisions are in
daemon.cases.decisions; requester commands in daemon.cases.requests.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.audit.casechain import chain_event
from daemon.cases.blobs import BlobStore
from daemon.cases.casetypes import CaseType, CaseTypeRegistry
from daemon.cases.documents import Documents, Stage, describe
from daemon.cases.documents import StoredDocument as StoredDocument  # (drop folders use it)
from daemon.cases.duetimes import next_check
from daemon.cases.examination import Examiner
from daemon.cases.holds import hold_for_approver, tell_held
from daemon.cases.numbering import next_number
from daemon.cases.states import CaseState, StepState
from daemon.clock import Clock
from daemon.conditions.budgets import Budgets
from daemon.conditions.casebudgets import CaseBudgets
from daemon.conditions.factors import Factors
from daemon.conditions.library import ConditionLibrary
from daemon.conditions.sets import ConditionBook, ConditionSet
from daemon.config import Config
from daemon.directory.lookup import Member, member, parent_unit, reread_directory
from daemon.notify.compose import decision_link, thread_id_for
from daemon.notify.html import phases_ahead
from daemon.notify.notifier import Notifier
from daemon.notify.views import case_view, who
from daemon.parsing.message import Attachment as MailAttachment
from daemon.routing.engine import Facts, Next, Pos, after_approval, next_step, walk
from daemon.routing.registry import TemplateRegistry
from daemon.routing.templates import SYSTEM_ACTIONS, Template
from daemon.security.tokens import TokenService
from daemon.store.models import Case, CaseEvent, CaseStep
from daemon.store.reorg_models import in_progress

if TYPE_CHECKING:
    from daemon.execution.executor import Executions
    from daemon.publication.publisher import Publisher

DECISION_WORDS = ("APPROVE", "REJECT", "RETURN", "HOLD")


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


class Workflow:
    def __init__(
        self, cfg: Config, clock: Clock, types: CaseTypeRegistry, tokens: TokenService,
        notifier: Notifier, registry: TemplateRegistry, blobs: BlobStore,
        budgets: Budgets | None = None,
    ) -> None:
        """`budgets`: the period budgets approvals consume; None keeps none."""
        self.cfg = cfg
        self.clock = clock
        self.types = types
        self.tokens = tokens
        self.notifier = notifier
        notifier.view_of = lambda s, case, locale: case_view(s, case, self.types, locale)
        notifier.route_ahead = lambda s, case, locale: phases_ahead(
            self.template_of(s, case).phases, case.route, locale)
        self.registry = registry
        self.blobs = blobs
        self.documents = Documents(cfg.cases, clock, blobs)  # documents at every stage
        self.conditions = ConditionBook()  # as loaded from files (for `rules check`)
        self.library = ConditionLibrary(clock, {})  # in force: the database's versions
        self.examiner = Examiner(self)
        self.factors: Factors | None = None  # external values conditions read
        self.case_budgets = CaseBudgets(budgets, clock, self.record, self.approver_sets)
        self.executions: Executions | None = None  # SPEC 6.5; set by the app
        self.publisher: Publisher | None = None  # SPEC 8: stamp and publish steps

    @property
    def budgets(self) -> Budgets | None:
        """The store itself, for readers of what is left (examination, period roll-over)."""
        return self.case_budgets.store

    # --- history and mail ------------------------------------------------------------------

    def record(self, s: Session, case: Case, kind: str, actor: Member | None,
               detail: str = "", decision: str | None = None,
               reason: str | None = None) -> None:
        now = self.clock.now()
        event = CaseEvent(
            case_id=case.id, at=now, kind=kind, actor_id=actor.id if actor else None,
            actor=actor.snapshot() if actor else {}, decision=decision, reason=reason,
            detail=detail,
        )
        s.add(event)
        chain_event(s, case, event)
        case.updated_at = now

    def send(self, s: Session, template: str, to: Member, case: Case,
             extra: dict[str, Any] | None = None, token: str | None = None) -> None:
        view = case_view(s, case, self.types, to.locale)
        ctx: dict[str, Any] = {"view": view, "recipient": to.display_name(to.locale),
                               "note": "", "note_detail": "", **(extra or {})}
        self.notifier.to_member(s, template, to, ctx, case, reply_token=token)

    def tell_requester(self, s: Session, case: Case, template: str,
                       extra: dict[str, Any] | None = None, *, by: Member | None = None,
                       asked: list[Member] | None = None) -> None:
        """The requester, and a proxy who entered the case for them, hear the same news.

        `by` (who acted) and `asked` (who is asked next) are named in each reader's language.
        """
        for pid in dict.fromkeys([case.requester_id, case.entered_by_id]):
            person = member(s, pid) if pid else None
            if person is None:
                continue
            ctx = dict(extra or {})
            if by is not None:
                ctx["by"] = who(by, person.locale)
            if asked is not None:
                ctx["next"] = ", ".join(who(m, person.locale) for m in asked) or None
            self.send(s, template, person, case, ctx)

    # --- templates and facts ---------------------------------------------------------------

    def template_of(self, s: Session, case: Case) -> Template:
        return self.registry.of_version(s, case.workflow_version_id, case.case_type)

    def facts(self, s: Session, case: Case) -> Facts:
        ct = self.types.get(case.case_type)
        kinds: dict[str, str] = {f.name: str(f.kind) for f in ct.fields} if ct else {}
        requester = member(s, case.requester_id)
        return Facts(dict(case.fields), kinds, {
            "case_type": case.case_type,
            "requester_unit": requester.unit.id if requester and requester.unit else "",
            "today": self.today().isoformat(),
        })

    def today(self) -> datetime.date:
        """The company's day (`[workflow] timezone`): relations and proxies hold by it."""
        return self.day_of(self.clock.now())

    def day_of(self, when: datetime.datetime) -> datetime.date:
        return when.astimezone(self.cfg.workflow.zone).date()

    # --- lifecycle -------------------------------------------------------------------------

    def open_case(self, s: Session, req: NewRequest) -> Case:
        now = self.clock.now()
        number = next_number(s, self.cfg.cases.number_format, now)
        version_id, _ = self.registry.current(req.case_type.name)
        case = Case(
            number=number, case_type=req.case_type.name, title=req.title,
            requester_id=req.requester.id,
            entered_by_id=req.entered_by.id if req.entered_by else None,
            state=CaseState.RECEIVED, fields=req.fields, created_at=now, updated_at=now,
            thread_id=thread_id_for(number, self.cfg.mail.domain),
            request_message_id=req.message_id, source_inbound_id=req.inbound_id,
            workflow_version_id=version_id, route=Pos().as_dict(), round=1,
        )
        s.add(case)
        s.flush()
        notes = self.documents.add(s, case, req.attachments, Stage(
            "request", req.entered_by or req.requester, inbound_id=req.inbound_id),
            req.documents)
        count = sum(n["outcome"] == "added" for n in notes)
        reorg = in_progress(s)
        self.record(s, case, "received", req.entered_by or req.requester,
                    detail=f"{req.case_type.name} request received by {req.channel}"
                    + (f" with {count} attachment(s)" if count else "")
                    + f"; workflow {self.registry.version_label(s, version_id)}"
                    + (f"; {describe(notes)}" if len(notes) > count else ""))
        if reorg is not None:  # routed when the reorganisation ends (daemon.cases.reorgrestore)
            case.route = {"deferred": reorg.id}
            self.record(s, case, "registered", None, detail=f"reorganisation {reorg.id} is in "
                        "progress: the request is routed when it is complete")
            self.tell_requester(s, case, "ack", {"documents": notes, "deferred": True})
            return case
        # `in_progress` may have waited for another instance's commit, which may have moved
        # the requester (routing climbs from their unit and rank): read them again.
        reread_directory(s)
        requester = member(s, req.requester.id) or req.requester
        asked = self.route(s, case, Pos(), False, requester, announce=False)
        self.tell_requester(s, case, "ack", {"documents": notes}, asked=asked)
        self.announce(s, case)
        return case

    def announce(self, s: Session, case: Case) -> None:
        """After the acknowledgement: a case that ended approved, or is held, says so."""
        if case.state == CaseState.APPROVED:
            self.tell_requester(s, case, "approved")
        elif case.state == CaseState.HELD:
            tell_held(self, s, case)

    def route(self, s: Session, case: Case, start: Pos, inside: bool,
              last_actor: Member, announce: bool = True, resume: int = 0,
              needed: bool = False, replacing: tuple[Member, ...] = ()) -> list[Member]:
        """Ask whoever comes next; with nobody left the case is approved. Returns who.

        With `announce`, the requester is told when the case ends approved (callers that
        first send their own acknowledgement pass False and announce afterwards). `resume`
        continues a failed examination's recovery paths after a wait (daemon.cases.recovery).
        `needed`: `start` is an ask that was waiting for someone (re-resolved after the
        directory changed): nobody there holds the case, it never moves on (engine.walk).
        `replacing` names whom the people asked there replace (their mail says so).
        """
        requester = member(s, case.requester_id) or last_actor
        template = self.template_of(s, case)
        people: list[Member] = []
        notes: dict[str, tuple[str, str]] = {}
        while True:
            nxt: Next = walk(s, template, start, inside, self.facts(s, case), case.case_type,
                             requester, last_actor,
                             # a re-resolved ask needs a relation valid now, not at filing
                             self.today() if needed else self.day_of(case.created_at),
                             needed)
            resumed, needed = needed, False  # only the first ask was waiting
            for note in nxt.notes:
                self.record(s, case, "routed", None, detail=note)
            if nxt.pos is None or nxt.resolution is None or nxt.resolution.failed:
                break
            if resumed and nxt.resolution.mode == "all":
                # Asked again after a hold or a move: who already approved this step in this
                # round is not asked twice; if all of them did, the step is done.
                done = self.approved_at(s, case, nxt.pos)
                left = tuple(m for m in nxt.resolution.approvers if m.id not in done)
                if not left:
                    start, inside = after_approval(template, nxt.pos)
                    last_actor = member(s, done[-1]) or last_actor
                    continue
                nxt = replace(nxt, resolution=replace(nxt.resolution, approvers=left))
            assert nxt.pos is not None and nxt.resolution is not None  # (for mypy, as above)
            step_def = template.phases[nxt.pos.phase].steps[nxt.pos.step]
            if step_def.action in SYSTEM_ACTIONS:
                # Stamp (and publish): the route goes on only once every document is stamped.
                case.route = nxt.pos.as_dict()  # where `ringi case resume` starts again
                if self.publisher is None or not self.publisher.at_step(s, case, step_def,
                                                                         last_actor):
                    return []
                start, inside = next_step(template, nxt.pos), False
                continue
            if step_def.action != "notify":
                verdict = self.examiner.at_step(s, case, requester, nxt, template, resume)
                resume = 0
                if verdict.kind == "approved" and verdict.last is not None:
                    start, inside = after_approval(template, nxt.pos)
                    last_actor = verdict.last
                    continue
                if verdict.kind in ("rejected", "stopped"):
                    return verdict.asked
                people, notes = verdict.people, verdict.notes
                break
            # A notify step informs and moves on: nobody's decision is awaited.
            for person in nxt.resolution.approvers:
                self.record(s, case, "notified", person,
                            detail=f"{step_def.name}: for information only")
                self.send(s, "notify", person, case)
            start, inside = next_step(template, nxt.pos), False
        if nxt.done or nxt.pos is None or nxt.resolution is None:
            case.route = None
            case.state = CaseState.APPROVED
            self.record(s, case, "approved", None, detail="every required approver has approved")
            if self.executions is not None:
                self.executions.on_approved(s, case)
            if announce:
                self.tell_requester(s, case, "approved")
            return []
        case.route = nxt.pos.as_dict()
        case.state = CaseState.IN_REVIEW
        res = nxt.resolution
        phase = template.phases[nxt.pos.phase]
        step_name = phase.steps[nxt.pos.step].name
        if res.failed:
            admin = member(s, self.cfg.workflow.admin)
            if (template.on_vacant or self.cfg.workflow.on_vacant) == "hold":
                hold_for_approver(self, s, case, nxt.pos, res.gap or "approver gone",
                                  res.explanation, last_actor, announce=announce)
                return []
            if admin is None:
                case.state = CaseState.SUSPENDED
                self.record(s, case, "suspended", None,
                            detail=f"no approver and no administrator {self.cfg.workflow.admin!r}")
                return []
            approvers, kind, mode = [admin], "admin", "single"
            note_detail = res.explanation
        else:
            approvers, kind, mode = people or list(res.approvers), "approver", res.mode
            note_detail = ""
        slot = self.next_slot(s, case)
        for approver in approvers:
            step = self.new_step(s, case, approver, slot=slot, mode=mode, phase=phase.name,
                                 step_name=step_name, pos=nxt.pos.as_dict(), kind=kind,
                                 resolver=res.resolver)
            # Why someone with stored conditions is asked in person after all.
            note, detail = notes.get(approver.id, (
                "admin" if kind == "admin" else "reassigned" if replacing else "",
                ", ".join(who(m, approver.locale) for m in replacing) or note_detail))
            self.ask(s, case, step, approver, note=note, note_detail=detail)
        return approvers

    def next_slot(self, s: Session, case: Case) -> int:
        return (s.scalar(select(func.max(CaseStep.slot)).where(CaseStep.case_id == case.id))
                or 0) + 1

    def approver_sets(self, s: Session, case: Case, approver: Member) -> list[ConditionSet]:
        """The sets `approver` keeps for this case's requester (none if not in the directory)."""
        requester = member(s, case.requester_id)
        if requester is None:
            return []
        return self.library.book(s).for_approver(
            approver.id, case.case_type, requester.id, self.units_of(s, requester),
            case.number)

    def units_of(self, s: Session, person: Member) -> set[str]:
        """The person's unit and every unit above it: a set for a unit covers sub-units."""
        units: set[str] = set()
        current = person.unit.id if person.unit else None
        while current is not None and current not in units:
            units.add(current)
            parent = parent_unit(s, current)
            current = parent.id if parent else None
        return units

    def new_step(self, s: Session, case: Case, approver: Member, *, slot: int, mode: str,
                 phase: str, step_name: str, pos: dict[str, Any] | None, kind: str,
                 resolver: str) -> CaseStep:
        seq = (s.scalar(select(func.max(CaseStep.seq)).where(CaseStep.case_id == case.id))
               or 0) + 1
        step = CaseStep(case_id=case.id, seq=seq, resolver=resolver, approver_id=approver.id,
                        state=StepState.PENDING, asked_at=self.clock.now(), round=case.round,
                        slot=slot, mode=mode, phase=phase, step_name=step_name, pos=pos,
                        kind=kind, asked_post={"unit": approver.unit.id if approver.unit
                                               else None,
                                               "position": approver.position.id
                                               if approver.position else None})
        step.next_check_at = next_check(step, self.cfg.workflow)
        s.add(step)
        s.flush()
        return step

    def ask(self, s: Session, case: Case, step: CaseStep, approver: Member,
            note: str = "", note_detail: str = "") -> None:
        token = self.tokens.issue(s, case.id, step.id, approver.id, self.clock.now())
        step.next_check_at = next_check(step, self.cfg.workflow)  # a reminder moves it on
        what = {"admin": "the administrator is asked: ", "returned": "asked again: ",
                "reminder": "reminder: ", "escalated": "escalated: ",
                "substitute": "substitute asked: "}.get(note, "")
        self.record(s, case, "asked", approver,
                    detail=f"{what}approval requested ({step.phase}/{step.step_name}, "
                    f"ask {step.slot}{', ' + step.mode if step.mode != 'single' else ''})"
                    + (f": {note_detail}" if note_detail else ""))
        subject_hint = f"[{case.number}] {case.title} [#{token}]"
        links = {w: decision_link(self.cfg.mail, token, subject_hint, w) for w in DECISION_WORDS}
        self.send(s, "approval_request", approver, case,
                  {"token": token, "links": links, "note": note, "note_detail": note_detail,
                   "mode": step.mode,
                   "expires": self.clock.now() + self.tokens.ttl},
                  token=token)
        self.tokens.remember_request(s, case.id, token)  # a reply without it is known

    def close_step(self, s: Session, step: CaseStep, state: str) -> None:
        """End a step that will not be decided (superseded, cancelled): its tokens die."""
        step.state = state
        self.tokens.revoke_step(s, step.id, self.clock.now())

    def previous_approval(self, s: Session, case: Case, before_slot: int) -> CaseStep | None:
        """The last approval before an ask in the current round."""
        return s.scalar(select(CaseStep).where(
            CaseStep.case_id == case.id, CaseStep.round == case.round,
            CaseStep.state == StepState.APPROVED, CaseStep.slot < before_slot)
            .order_by(CaseStep.slot.desc(), CaseStep.seq.desc()).limit(1))

    def approved_at(self, s: Session, case: Case, pos: Pos) -> list[str]:
        """Who approved the step at `pos` in the current round, in order."""
        return [st.approver_id for st in s.scalars(select(CaseStep).where(
            CaseStep.case_id == case.id, CaseStep.round == case.round,
            CaseStep.state == StepState.APPROVED).order_by(CaseStep.seq))
            if st.pos is not None and Pos.of(st.pos) == pos]

    def previous_actor(self, s: Session, case: Case, before_slot: int) -> Member | None:
        """Who acted before an ask: the last approver, or the requester at the start."""
        prev = self.previous_approval(s, case, before_slot)
        return member(s, prev.approver_id) if prev else member(s, case.requester_id)

    def pending_steps(self, s: Session, case: Case) -> list[CaseStep]:
        return list(s.scalars(select(CaseStep).where(
            CaseStep.case_id == case.id, CaseStep.state == StepState.PENDING)
            .order_by(CaseStep.seq)))

