"""Setters change their stored conditions by email (SPEC 6: "new", "replace", "for case N").

Subject `conditions new|replace|case NUMBER|list|retire NAME`; the set itself is the mail's
text (TOML, up to a "-- " signature line) or an attached `.toml` file. A setter may only
write their own sets; nothing is stored unless the whole set validates, and the reply says
exactly what was wrong. A revised set for a case that waits for this setter's revision
re-examines that case at once.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.cases.recovery import resume_after_wait
from daemon.cases.states import CaseState
from daemon.cases.workflow import Workflow
from daemon.conditions.sets import ConditionSetError
from daemon.directory.lookup import Member
from daemon.parsing.message import ParsedMail
from daemon.store.models import Case, CaseStep

CONDITIONS_RE = re.compile(
    r"^\s*(?:conditions|条件)\s+(new|replace|case|list|retire|新規|置換|案件|一覧|廃止)"
    r"(?:\s+(\S+))?\s*$", re.IGNORECASE)
WORDS = {"新規": "new", "置換": "replace", "案件": "case", "一覧": "list", "廃止": "retire"}


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
        if word == "retire":
            row = lib.active(s, arg)
            if row is None or row.setter_id != sender.id:
                return self.refuse(s, mail, sender, word, f"you have no condition set {arg!r}")
            lib.retire(s, arg, actor=sender.id, source=f"mail {mail.message_id}")
            return self.reply(s, mail, sender, "ok", word, saved=f"{arg} retired")
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
            body = tomllib.loads(set_text(mail))
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
        try:
            saved = lib.save(s, body, origin="email", source=f"mail {mail.message_id}",
                             actor=sender.id, case_number=case.number if case else "")
        except ConditionSetError as exc:
            return self.reply(s, mail, sender, "bad_conditions", word, problems=[
                e.split(": ", 1)[1] if e.startswith("mail ") else e for e in exc.errors])
        text = f"{saved.name} version {saved.version}" + (
            f", for case {case.number} only" if case else "")
        if case is not None:
            self.wf.record(s, case, "conditions revised", sender, detail=text)
            if case.state == CaseState.AWAITING_REVISION \
                    and (case.route or {}).get("setter") == sender.id:
                resume_after_wait(self.wf, s, case, f"revised conditions arrived: {text}")
                text += f"; case {case.number} examined again: now {case.state}"
        return self.reply(s, mail, sender, "ok", word, saved=text)
