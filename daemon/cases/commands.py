"""Requester commands by email: status, cancel, reapply, correct, pending (SPEC 4, 5).

`pending` answers with the digest of every case waiting for the sender (daemon.cases.digests,
with decision links); `digest off` / `digest on` (ダイジェスト 停止 / 再開) stops or resumes
the daily one.

The subject carries the command and case number; for `reapply` and `correct` the body may
carry corrected "Field: value" lines, validated like a new request and recorded as a
correction with the old and new values, and the mail's attachments are added to the case at
that stage (daemon.cases.documents). `correct N` with only attachments is how a requester
adds documents to a case returned to them. Every other command, and a refused one, adds
none, and its answer names each file as not added.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.cases.casetypes import CaseType
from daemon.cases.digests import send_digest, set_digest
from daemon.cases.documents import Note, Stage, not_added
from daemon.cases.routeedit import RouteEditError, RouteEditor
from daemon.cases.states import OPEN_STATES, CaseState, StepState
from daemon.cases.workflow import Workflow
from daemon.directory.lookup import Member, member
from daemon.notify.views import format_value, person_name
from daemon.parsing.message import ParsedMail
from daemon.parsing.request import RawForm, parse_form_text, validate_fields
from daemon.routing.engine import Pos
from daemon.store.models import Case, CaseStep

CASE_COMMAND_RE = re.compile(
    r"^\s*(status|cancel|reapply|correct|状況|取消|取り消し|再申請|修正)\s+(\S+)\s*$",
    re.IGNORECASE)
ROUTE_RE = re.compile(r"^\s*route\s+(\S+)\s+(skip|add|replace)(?:\s+(\S+))?\s*$",
                      re.IGNORECASE)
PENDING_RE = re.compile(r"^\s*(pending|承認待ち)\s*$", re.IGNORECASE)
DIGEST_RE = re.compile(r"^\s*(?:digest|ダイジェスト)\s+(on|off|再開|停止)\s*$", re.IGNORECASE)
ALIASES = {"状況": "status", "取消": "cancel", "取り消し": "cancel", "再申請": "reapply",
           "修正": "correct"}


def parse_case_command(subject: str) -> tuple[str, str] | None:
    if PENDING_RE.match(subject):
        return "pending", ""
    digest = DIGEST_RE.match(subject)
    if digest:
        return "digest", "on" if digest.group(1).lower() in ("on", "再開") else "off"
    route = ROUTE_RE.match(subject)
    if route:
        return "route", " ".join(x for x in (route.group(1).upper(), route.group(2).lower(),
                                             route.group(3)) if x)
    m = CASE_COMMAND_RE.match(subject)
    if not m:
        return None
    word = m.group(1).lower()
    return ALIASES.get(m.group(1), word), m.group(2).upper()


class CaseCommands:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow

    def reply(self, s: Session, mail: ParsedMail, sender: Member, command: str,
              outcome: str, case: Case | None = None, documents: list[Note] | None = None,
              **extra: Any) -> str:
        """Answer the command; `documents` as attached, else the mail's files not added."""
        if documents is None:
            documents = not_added(mail.attachments,
                                  "not_done" if outcome != "ok" else "no_documents")
        self.wf.notifier.to_address(
            s, "command_reply", mail.from_addr, sender.locale,
            {"command": command, "outcome": outcome, "documents": documents,
             "number": case.number if case else extra.pop("number", ""), **extra},
            case, in_reply_to=mail.message_id)
        return f"{command}: {outcome}"

    def run(self, s: Session, mail: ParsedMail, sender: Member, command: str,
            number: str, inbound_id: int | None = None) -> str:
        """`inbound_id`: the stored input, recorded with the documents it brings."""
        if command == "pending":
            return self.pending(s, mail, sender)
        if command == "digest":
            changed = set_digest(s, sender.id, number == "on", self.wf.clock.now())
            hour = self.wf.cfg.workflow.digest_hour
            self.wf.notifier.to_address(
                s, "digest_setting", mail.from_addr, sender.locale,
                {"on": number == "on", "changed": changed,
                 "hour": hour if hour is not None and hour >= 0 else None,
                 "timezone": self.wf.cfg.workflow.timezone}, in_reply_to=mail.message_id)
            return f"digest {number} for {sender.id}" + ("" if changed else " (as before)")
        if command == "route":
            return self.route(s, mail, sender, *number.split(" "))
        case = s.scalar(select(Case).where(Case.number == number))
        if case is None:
            return self.reply(s, mail, sender, command, "no_such_case", number=number)
        steps = s.scalars(select(CaseStep).where(CaseStep.case_id == case.id)).all()
        involved = {case.requester_id, case.entered_by_id, *(st.approver_id for st in steps)}
        if sender.id not in involved:
            return self.reply(s, mail, sender, command, "not_yours", number=number)
        if command == "status":
            return self.status(s, mail, sender, case)
        if sender.id not in (case.requester_id, case.entered_by_id):
            return self.reply(s, mail, sender, command, "requester_only", case)
        if command == "cancel":
            return self.cancel(s, mail, sender, case)
        handler = self.reapply if command == "reapply" else self.correct
        return handler(s, mail, sender, case, inbound_id)

    def route(self, s: Session, mail: ParsedMail, sender: Member, number: str, action: str,
              person: str | None = None) -> str:
        case = s.scalar(select(Case).where(Case.number == number))
        if case is None:
            return self.reply(s, mail, sender, "route", "no_such_case", number=number)
        try:
            asked = RouteEditor(self.wf).edit(s, case, sender, action, person,
                                              reason=mail.text.strip()[:500])
        except RouteEditError as exc:
            return self.reply(s, mail, sender, "route", "refused", case, why=str(exc))
        return self.reply(s, mail, sender, "route", "ok", case, action=action,
                          waiting=[m.display_name(sender.locale) for m in asked])

    def status(self, s: Session, mail: ParsedMail, sender: Member, case: Case) -> str:
        waiting = [person_name(s, st.approver_id, sender.locale)
                   for st in self.wf.pending_steps(s, case)]
        return self.reply(s, mail, sender, "status", "ok", case, state=case.state,
                          waiting=waiting)

    def pending(self, s: Session, mail: ParsedMail, sender: Member) -> str:
        """The digest, at once: every waiting case with its own decision links."""
        listed = send_digest(self.wf, s, sender, in_reply_to=mail.message_id or "")
        return f"pending: digest of {listed} case(s) sent"

    def cancel(self, s: Session, mail: ParsedMail, sender: Member, case: Case) -> str:
        if case.state not in {*OPEN_STATES, CaseState.RETURNED, CaseState.REJECTED,
                              CaseState.SUSPENDED}:
            return self.reply(s, mail, sender, "cancel", "wrong_state", case, state=case.state)
        for st in self.wf.pending_steps(s, case):
            self.wf.close_step(s, st, StepState.SUPERSEDED)
            approver = member(s, st.approver_id)
            if approver is not None:
                self.wf.send(s, "cancelled", approver, case, {"by": sender.person.name})
        self.wf.case_budgets.release(s, case, "the case was cancelled")
        case.state = CaseState.CANCELLED
        case.route = None
        self.wf.record(s, case, "cancelled", sender, detail="cancelled by email")
        return self.reply(s, mail, sender, "cancel", "ok", case)

    def _corrections(self, s: Session, mail: ParsedMail, sender: Member, case: Case,
                     command: str) -> tuple[dict[str, Any], list[str]] | str:
        """Corrected fields from the body (may be none), or the refusal already sent."""
        ct: CaseType | None = self.wf.types.get(case.case_type)
        form = parse_form_text(mail.text)
        if ct is None or not form.values:
            return {}, []
        merged = dict(form.values)
        for spec in ct.fields:  # unchanged fields keep their values
            given = any(k in merged for k in spec.match_keys())
            if not given and case.fields.get(spec.name) is not None:
                merged[spec.name] = str(case.fields[spec.name]) if not isinstance(
                    case.fields[spec.name], list) else ", ".join(case.fields[spec.name])
        values, problems = validate_fields(ct, RawForm(
            type_key=None, values=merged, line_of={}, unknown_lines=[]))
        if problems:
            msgs = [p.message_ja if sender.locale == "ja" else p.message for p in problems]
            return self.reply(s, mail, sender, command, "bad_fields", case, problems=msgs)
        changes = [f"{spec.label}: {format_value(spec.kind, case.fields.get(spec.name))} → "
                   f"{format_value(spec.kind, values.get(spec.name))}"
                   for spec in ct.fields if case.fields.get(spec.name) != values.get(spec.name)]
        return values, changes

    def _apply(self, s: Session, case: Case, sender: Member, values: dict[str, Any],
               changes: list[str]) -> None:
        if changes:
            case.fields = values
            self.wf.record(s, case, "corrected", sender, detail="; ".join(changes))

    def reapply(self, s: Session, mail: ParsedMail, sender: Member, case: Case,
                inbound_id: int | None = None) -> str:
        if case.state not in (CaseState.REJECTED, CaseState.RETURNED):
            return self.reply(s, mail, sender, "reapply", "wrong_state", case, state=case.state)
        got = self._corrections(s, mail, sender, case, "reapply")
        if isinstance(got, str):
            return got
        self.wf.case_budgets.release(s, case, "the case was reapplied")  # the new round takes anew
        self._apply(s, case, sender, *got)
        case.round += 1
        self.wf.record(s, case, "reapplied", sender,
                       detail=f"round {case.round}: routing restarts from the beginning")
        notes = self.wf.documents.attach(s, self.wf, case, mail.attachments,
                                         Stage("reapply", sender, inbound_id=inbound_id))
        requester = member(s, case.requester_id) or sender
        asked = self.wf.route(s, case, Pos(), False, requester, announce=False)
        self.wf.tell_requester(s, case, "ack", {"reapplied": True, "documents": notes},
                               asked=asked)
        self.wf.announce(s, case)
        return f"reapply: {case.number} round {case.round}"

    def correct(self, s: Session, mail: ParsedMail, sender: Member, case: Case,
                inbound_id: int | None = None) -> str:
        if case.state != CaseState.RETURNED:
            return self.reply(s, mail, sender, "correct", "wrong_state", case, state=case.state)
        got = self._corrections(s, mail, sender, case, "correct")
        if isinstance(got, str):
            return got
        values, changes = got
        if not changes and not self.wf.documents.fresh(s, case, mail.attachments):
            return self.reply(s, mail, sender, "correct", "no_changes", case,
                              self.wf.documents.judged(mail.attachments))
        self._apply(s, case, sender, values, changes)
        notes = self.wf.documents.attach(s, self.wf, case, mail.attachments,
                                         Stage("correct", sender, inbound_id=inbound_id))
        news = changes + [f"new document: {n['filename']}" for n in notes
                          if n["outcome"] == "added"]
        route = case.route or {}
        back = member(s, str(route.get("returned_by")))
        returned = s.get(CaseStep, route.get("step_id")) if route.get("step_id") else None
        if back is None or returned is None or not back.person.active:
            requester = member(s, case.requester_id) or sender
            self.wf.case_budgets.release(s, case, "the route restarts after a correction")
            self.wf.route(s, case, Pos(), False, requester)
        else:
            case.state = CaseState.IN_REVIEW
            case.route = returned.pos
            new = self.wf.new_step(s, case, back, slot=self.wf.next_slot(s, case),
                                   mode="single", phase=returned.phase,
                                   step_name=returned.step_name, pos=returned.pos,
                                   kind="corrected", resolver=returned.resolver)
            self.wf.ask(s, case, new, back, note="corrected", note_detail="; ".join(news))
        return self.reply(s, mail, sender, "correct", "ok", case, documents=notes,
                          changes=changes)
