"""New requests and commands sent to the request address."""

from __future__ import annotations

import logging
import re

from sqlalchemy.orm import Session

from daemon.cases.casetypes import CaseType
from daemon.cases.commands import CaseCommands, parse_case_command
from daemon.cases.conditioncommands import ConditionCommands, parse_conditions_command
from daemon.cases.relationcommands import RelationCommands
from daemon.cases.workflow import NewRequest, Workflow
from daemon.directory.lookup import Member, member, member_by_email, proxies_of
from daemon.notify.compose import clean_line
from daemon.parsing.message import ParsedMail
from daemon.parsing.prefill import prefilled_form
from daemon.parsing.relationform import parse_subject as parse_relation_command
from daemon.parsing.request import RawForm, parse_form_text, render_form, validate_fields

log = logging.getLogger(__name__)

# The whole subject must be the command: "New laptop for Kyoto" is a title, not `new`.
COMMAND_RE = re.compile(r"^\s*(?:(help|ヘルプ)|(new|新規)\s+(\S+))\s*$", re.IGNORECASE)


# A line naming the person a request is entered for (the sender becomes the proxy).
REQUESTER_KEYS = frozenset({"requester", "on behalf of", "申請者", "代理申請"})


def looks_japanese(text: str) -> bool:
    return bool(re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", text))


class RequestHandler:
    def __init__(self, workflow: Workflow, relations: RelationCommands) -> None:
        self.wf = workflow
        self.commands = CaseCommands(workflow)
        self.condition_commands = ConditionCommands(workflow)
        self.relation_commands = relations

    def types_for(self, locale: str) -> list[dict[str, str]]:
        return [{"name": t.name, "title": t.title_ja if locale == "ja" else t.title}
                for t in self.wf.types.all()]

    def answer(self, s: Session, mail: ParsedMail, locale: str, template: str,
              **ctx: object) -> None:
        self.wf.notifier.to_address(
            s, template, mail.from_addr, locale,
            {"subject": mail.subject, "types": self.types_for(locale), **ctx},
            in_reply_to=mail.message_id,
        )

    def command(self, mail: ParsedMail) -> tuple[str, str] | None:
        """A command is the subject (or, with no subject, the first body line)."""
        line = mail.subject or next((ln for ln in mail.text.splitlines() if ln.strip()), "")
        m = COMMAND_RE.match(line)
        if not m:
            return None
        return ("help", "") if m.group(1) else ("new", m.group(3))

    def handle(self, s: Session, mail: ParsedMail, sender: Member, inbound_id: int) -> str:
        locale = sender.locale
        cond_cmd = parse_conditions_command(mail.subject)
        if cond_cmd is not None:  # the text is a condition set, not a request form
            return self.condition_commands.run(s, mail, sender, *cond_cmd)
        rel_cmd = parse_relation_command(mail.subject)
        if rel_cmd is not None:  # the text is a relation form
            return self.relation_commands.run(s, mail, sender, *rel_cmd)
        form = parse_form_text(mail.text)
        case_cmd = parse_case_command(mail.subject)
        if case_cmd is not None and not form.type_key:
            return self.commands.run(s, mail, sender, *case_cmd, inbound_id=inbound_id)
        cmd = None if form.type_key else self.command(mail)
        if cmd is not None:
            return self.run_command(s, mail, locale, *cmd)
        if not form.type_key:
            self.answer(s, mail, locale, "request_error", problem="no_type", problems=[],
                       form=None)
            return "request refused: no Type line"
        ct = self.wf.types.get(form.type_key)
        if ct is None:
            self.answer(s, mail, locale, "request_error", problem="unknown_type",
                       given=form.type_key, problems=[], form=None)
            return f"request refused: unknown type {form.type_key!r}"
        on_behalf = [form.values[k] for k in REQUESTER_KEYS if k in form.values]
        form = RawForm(form.type_key, {k: v for k, v in form.values.items()
                                       if k not in REQUESTER_KEYS}, form.line_of,
                       form.unknown_lines)
        requester, entered_by = sender, None
        if on_behalf:
            found = self.on_behalf_of(s, sender, on_behalf[0])
            if isinstance(found, str):
                self.answer(s, mail, locale, "request_error", problem="on_behalf",
                            given=on_behalf[0], why=found, problems=[], form=None)
                return f"request refused: on behalf of {on_behalf[0]!r}: {found}"
            requester, entered_by = found, sender
        values, problems = validate_fields(ct, form)
        if problems:
            msgs = [p.message_ja if locale == "ja" else p.message for p in problems]
            # The request comes back as written, the wrong lines marked (SPEC 9, issue 14).
            self.answer(s, mail, locale, "request_error", problem="fields", problems=msgs,
                       form=prefilled_form(ct, mail.text, form, problems, locale),
                       type_title=self._title(ct, locale))
            return f"request refused: {len(problems)} field problem(s)"
        # The subject is whatever a mail client (or an attacker) sent: keep it readable and
        # safe for every mail that will carry it (daemon.notify.compose.clean_line).
        title = clean_line(mail.subject) or (ct.title_ja if locale == "ja" else ct.title)
        case = self.wf.open_case(s, NewRequest(
            requester=requester, case_type=ct, title=title, fields=values,
            attachments=mail.attachments, message_id=mail.message_id, inbound_id=inbound_id,
            entered_by=entered_by,
        ))
        return f"case {case.number} opened"

    def on_behalf_of(self, s: Session, sender: Member, given: str) -> Member | str:
        """The person a proxy enters a request for, or why that is not allowed."""
        who = member(s, given.strip()) or member_by_email(s, given.strip())
        if who is None or not who.person.active:
            return "not_found"
        if who.id == sender.id:
            return "self"
        same_unit = who.unit is not None and sender.unit is not None and \
            who.unit.id == sender.unit.id
        registered = any(p.id == sender.id
                         for p in proxies_of(s, who.id, self.wf.today()))
        return who if same_unit or registered else "not_allowed"

    def run_command(self, s: Session, mail: ParsedMail, locale: str, word: str,
                    arg: str) -> str:
        if word == "help":
            self.answer(s, mail, locale, "help")
            return "help sent"
        ct = self.wf.types.get(arg) if arg else None
        if ct is None:
            self.answer(s, mail, locale, "request_error", problem="unknown_type",
                       given=arg, problems=[], form=None)
            return f"new: unknown type {arg!r}"
        self.answer(s, mail, locale, "form", form=render_form(ct, locale),
                   type_title=self._title(ct, locale), type_name=ct.name)
        return f"form for {ct.name} sent"

    @staticmethod
    def _title(ct: CaseType, locale: str) -> str:
        return ct.title_ja if locale == "ja" else ct.title
