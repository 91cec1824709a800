"""Setters change their stored conditions by email (SPEC 6: "new", "replace", "for case N").

Subject `conditions new|replace|case NUMBER|list|retire NAME`; the set itself is the mail's
text (TOML, up to a "-- " signature line) or an attached `.toml` file. A setter may only
write their own sets; nothing is stored unless the whole set validates, and the reply says
exactly what was wrong.

A change decides future cases in the setter's name, so a From header alone is not enough:
a valid change waits for `conditions confirm CODE`, where the code was mailed to the
setter's own address (single-use, hashed, expiring). Only then is it in force; a revised
set for a case that waits for this setter's revision re-examines that case at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import tomllib
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.cases.recovery import claim_waiting, resume_after_wait
from daemon.cases.states import CaseState
from daemon.cases.workflow import Workflow
from daemon.conditions.sets import ConditionSetError, build_set
from daemon.directory.lookup import Member
from daemon.parsing.message import ParsedMail
from daemon.parsing.numbers import loads_toml
from daemon.store.condition_models import ConditionRequest
from daemon.store.models import Case, CaseStep

CONDITIONS_RE = re.compile(
    r"^\s*(?:(?:re|aw|fw|fwd|返信|転送)\s*[:：]\s*)*(?:conditions|条件)\s+"
    r"(new|replace|case|list|retire|confirm|新規|置換|案件|一覧|廃止|確認)"
    r"(?:\s+(\S+))?\s*$", re.IGNORECASE)
WORDS = {"新規": "new", "置換": "replace", "案件": "case", "一覧": "list", "廃止": "retire",
         "確認": "confirm"}
CONFIRM_HOURS = 24


def code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


def parse_conditions_command(subject: str) -> tuple[str, str] | None:
    m = CONDITIONS_RE.match(subject)
    if not m:
        return None
    word = WORDS.get(m.group(1), m.group(1).lower())
    return word, (m.group(2) or "")


def set_text(mail: ParsedMail) -> str:
    """The set as sent: an attached .toml file wins over the mail's text."""
    for att in mail.attachments:
        if att.filename.lower().endswith(".toml"):
            return att.data.decode("utf-8", errors="replace")
    lines = []
    for line in mail.text.splitlines():
        if line.rstrip() == "--":
            break
        lines.append(line)
    return "\n".join(lines)


class ConditionCommands:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow

    def reply(self, s: Session, mail: ParsedMail, sender: Member, outcome: str,
              word: str, **extra: Any) -> str:
        self.wf.notifier.to_address(
            s, "command_reply", mail.from_addr, sender.locale,
            {"command": f"conditions {word}", "outcome": outcome, "number": "",
             "conditions": True, **extra}, in_reply_to=mail.message_id)
        return f"conditions {word}: {outcome}" + (f" ({extra['why']})" if "why" in extra
                                                  else "")

    def refuse(self, s: Session, mail: ParsedMail, sender: Member, word: str,
               why: str) -> str:
        return self.reply(s, mail, sender, "refused", word, why=why)

    def run(self, s: Session, mail: ParsedMail, sender: Member, word: str, arg: str) -> str:
        lib = self.wf.library
        if word == "list":
            rows = lib.of_setter(s, sender.id)
            return self.reply(s, mail, sender, "ok", word, listing=[
                f"{r.name} v{r.version}" + (f" (case {r.case_number} only)" if r.case_number
                                            else "") + f" from {r.origin}" for r in rows])
        if word == "confirm":
            return self.confirm(s, mail, sender, arg)
        if word == "retire":
            row = lib.active(s, arg)
            if row is None or row.setter_id != sender.id:
                return self.refuse(s, mail, sender, word, f"you have no condition set {arg!r}")
            return self.ask_confirmation(s, mail, sender, word, arg, "", {})
        case: Case | None = None
        if word == "case":
            case = s.scalar(select(Case).where(Case.number == arg.upper()))
            asked = case is not None and s.scalar(select(CaseStep.id).where(
                CaseStep.case_id == case.id, CaseStep.approver_id == sender.id).limit(1))
            waiting = case is not None and (case.route or {}).get("setter") == sender.id
            if case is None or not (asked or waiting):
                return self.refuse(s, mail, sender, word,
                                   f"case {arg or '?'} does not exist or is not before you")
        try:
            body = loads_toml(set_text(mail))
        except tomllib.TOMLDecodeError as exc:
            return self.reply(s, mail, sender, "bad_conditions", word,
                              problems=[f"not valid TOML: {exc}"])
        if body.setdefault("setter", sender.id) != sender.id:
            return self.refuse(s, mail, sender, word,
                               "you can store conditions for yourself only (setter)")
        name = str(body.get("name", ""))
        current = lib.active(s, name)
        if word == "new" and current is not None:
            return self.refuse(s, mail, sender, word,
                               f"a set named {name!r} exists; use \"conditions replace\"")
        if word == "replace" and (current is None or current.setter_id != sender.id):
            return self.refuse(s, mail, sender, word, f"you have no condition set {name!r}")
        if case is not None:
            theirs = [r for r in (current, lib.active(s, name, case.number))
                      if r is not None and r.setter_id != sender.id]
            if theirs:
                return self.refuse(s, mail, sender, word, f"the name {name!r} belongs to "
                                   "another approver's set; use one of your own set names")
        try:
            build_set(body, f"mail {mail.message_id}", lib.fields_of,
                      case.number if case else "")
        except ConditionSetError as exc:
            return self.reply(s, mail, sender, "bad_conditions", word, problems=[
                e.split(": ", 1)[1] if e.startswith("mail ") else e for e in exc.errors])
        return self.ask_confirmation(s, mail, sender, word, name,
                                     case.number if case else "", body)

    def ask_confirmation(self, s: Session, mail: ParsedMail, sender: Member, word: str,
                         name: str, case_number: str, body: dict[str, Any]) -> str:
        """Keep the valid change aside and mail its one-time code to the setter's address."""
        code = secrets.token_hex(6).upper()  # 48 bits, single-use, expiring
        now = self.wf.clock.now()
        s.add(ConditionRequest(
            setter_id=sender.id, command=word, name=name, case_number=case_number,
            body=body, code_hash=code_hash(code), state="pending",
            source=f"mail {mail.message_id}", created_at=now,
            expires_at=now + timedelta(hours=CONFIRM_HOURS)))
        what = {"retire": f"retire {name}", "case": f"{name} for case {case_number} only",
                "new": f"new set {name}", "replace": f"new version of {name}"}[word]
        self.wf.notifier.to_address(
            s, "conditions_confirm", mail.from_addr, sender.locale,
            {"code": code, "what": what, "hours": CONFIRM_HOURS}, in_reply_to=mail.message_id)
        return f"conditions {word}: waiting for confirmation ({what})"

    def confirm(self, s: Session, mail: ParsedMail, sender: Member, code: str) -> str:
        lib = self.wf.library
        req = s.scalar(select(ConditionRequest).where(
            ConditionRequest.code_hash == code_hash(code),
            ConditionRequest.state == "pending"))
        if req is None or req.setter_id != sender.id \
                or req.expires_at <= self.wf.clock.now():
            return self.refuse(s, mail, sender, "confirm", "no change waits for that code "
                               "(it was used, has expired, or is not yours)")
        req.state = "confirmed"
        word, case_number = req.command, req.case_number
        if word == "retire":
            if not lib.retire(s, req.name, actor=sender.id, source=req.source):
                return self.refuse(s, mail, sender, word, f"{req.name} is no longer in force")
            return self.reply(s, mail, sender, "ok", word, saved=f"{req.name} retired")
        current = lib.active(s, req.name)
        if word == "new" and current is not None:
            return self.refuse(s, mail, sender, word,
                               f"a set named {req.name!r} exists meanwhile")
        others = [r for r in (current, lib.active(s, req.name, case_number))
                  if r is not None and r.setter_id != sender.id]
        if (word == "replace" and current is None) or (word in ("replace", "case") and others):
            return self.refuse(s, mail, sender, word,
                               f"{req.name!r} is not (or no longer) one of your sets")
        try:
            saved = lib.save(s, req.body, origin="email", source=req.source,
                             actor=sender.id, case_number=case_number)
        except ConditionSetError as exc:  # e.g. a case type changed meanwhile
            return self.reply(s, mail, sender, "bad_conditions", word, problems=exc.errors)
        case = s.scalar(select(Case).where(Case.number == case_number)) \
            if case_number else None
        text = f"{saved.name} version {saved.version}" + (
            f", for case {case_number} only" if case_number else "")
        if case is not None:
            self.wf.record(s, case, "conditions revised", sender, detail=text)
            if case.state == CaseState.AWAITING_REVISION \
                    and (case.route or {}).get("setter") == sender.id \
                    and claim_waiting(s, case.id):
                s.refresh(case)
                resume_after_wait(self.wf, s, case, f"revised conditions arrived: {text}")
                text += f"; case {case.number} examined again: now {case.state}"
        return self.reply(s, mail, sender, "ok", word, saved=text)
