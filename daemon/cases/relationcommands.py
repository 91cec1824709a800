"""Departments register approval relations by mail (SPEC 7): the `relation` commands.

Subject `relation register|update ID|end ID|list [WHO]|history [WHO]|confirm CODE|form`, or
in Japanese `承認関係 登録|変更|終了|一覧|履歴|確認|書式`. The registrar is the sender the
intake authenticated (its sender policy has run before this); the change is judged and
stored by daemon.directory.relations exactly as `ringi relation` does, so a mail and a
command can never disagree. Every answer goes to the sender's own address: a refusal with
each reason, a gap warning whose one-time code the registrar confirms by replying, a
listing, or the history as text with a CSV attachment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.directory.importer import relation_record as record_of
from daemon.directory.lookup import Member, member_by_email, unit
from daemon.directory.records import RelationRecord
from daemon.directory.registration import Refusal, label
from daemon.directory.relations import CONFIRM_HOURS, Action, Outcome, RelationRegistry
from daemon.notify.compose import OutgoingFile
from daemon.notify.notifier import Notifier
from daemon.parsing.message import ParsedMail
from daemon.parsing.relationform import Problem, RelationForm, blank_form, parse_form
from daemon.store.directory_models import ApprovalRelation
from daemon.store.models import OrgUnit, Person

HISTORY_LINES = 100  # in the mail's text; the CSV attachment always has every record


class RelationCommands:
    def __init__(self, registry: RelationRegistry, notifier: Notifier) -> None:
        self.registry = registry
        self.notifier = notifier

    def run(self, s: Session, mail: ParsedMail, sender: Member, word: str, arg: str) -> str:
        if word == "form":
            return self._answer(s, mail, sender, "form", word, arg,
                                form=blank_form(sender.locale, self.registry.today()))
        if word == "list":
            lines = self.registry.listing(s, self._subject(s, arg))
            return self._answer(s, mail, sender, "listing", word, arg, lines=lines)
        if word == "history":
            return self._history(s, mail, sender, arg)
        if word == "confirm":
            out = self.registry.confirm(s, sender.id, arg, "mail")
            if out is None:
                return self._answer(s, mail, sender, "no_code", word, arg)
            return self._outcome(s, mail, sender, out, word, arg)
        if word not in ("register", "update", "end"):
            return f"relation {word}: unknown"
        action: Action = "register" if word == "register" else \
            "update" if word == "update" else "end"
        form = parse_form(mail.text, word)
        if word == "register" and form.empty:
            return self._answer(s, mail, sender, "form", word, "",
                                form=blank_form(sender.locale, self.registry.today()))
        change = self._change(s, form, action, arg)
        if isinstance(change, Refusal):
            return self._answer(s, mail, sender, "refused", word, arg, reasons=[change])
        if form.problems or change is None:
            return self._answer(s, mail, sender, "bad_form", word, arg,
                                problems=form.problems, form=blank_form(
                                    sender.locale, self.registry.today())
                                if word == "register" else "")
        new, relation_id = change
        out = self.registry.change(s, sender.id, action, new, relation_id, "mail",
                                   form.given.get("note", ""))
        return self._outcome(s, mail, sender, out, word, arg)

    # --- reading the change ------------------------------------------------------------------

    def _change(self, s: Session, form: RelationForm, action: Action, arg: str
                ) -> tuple[RelationRecord, int | None] | Refusal | None:
        """The relation as it would stand after the change (None: the form has problems)."""
        if action == "register":
            return self._registration(s, form)
        if not arg.isdigit() or len(arg) > 12:
            form.problems.append(Problem(
                f"name the relation by its number: \"relation {action} 12\" (see \"relation "
                "list\")", f"関係を番号で指定してください（例: 承認関係 {_JA[action]} 12）。"
                "番号は「承認関係 一覧」でわかります"))
            return None
        row = s.get(ApprovalRelation, int(arg))
        if row is None or not row.active:
            return Refusal("unknown_relation")
        fields: dict[str, Any] = {}
        if "approver" in form.given:
            fields["approver"] = self._who(s, form.given["approver"])
        if form.valid_from is not None:
            fields["valid_from"] = form.valid_from
        if form.valid_to is not None or form.open_ended:
            fields["valid_to"] = form.valid_to
        if action == "end":
            if form.open_ended:
                form.problems.append(Problem("an end needs a last day (or none: today)",
                                             "終了には最終日が必要です（省略すると今日）"))
            fields.setdefault("valid_to", self.registry.today())
        elif not fields and "note" not in form.given:
            form.problems.append(Problem(
                "the mail changes nothing: give the lines to change (Approver, Valid from, "
                "Valid to, Note)", "変更する行（承認者、開始日、終了日、備考）がありません"))
        return (replace(record_of(row), **fields), row.id) if not form.problems else None

    def _registration(self, s: Session, form: RelationForm
                      ) -> tuple[RelationRecord, None] | None:
        g = form.given
        missing = [(en, ja) for key, en, ja in (
            ("approver", "Approver", "承認者"), ("kind", "Kind", "種別"),
            ("valid_from", "Valid from", "開始日")) if key not in g]
        objects = [k for k in ("person", "unit", "object") if k in g]
        if len(objects) != 1:
            missing.append(("exactly one of Person or Unit", "対象者か対象部署のどちらか一方"))
        for en, ja in missing:
            form.problems.append(Problem(f"{en} is missing", f"{ja}がありません"))
        if form.problems or form.kind is None or form.valid_from is None:
            return None
        which = objects[0]
        name = g[which]
        found_unit = self._unit(s, name) if which != "person" else None
        if which == "object" and found_unit is None:
            which = "person"
        object_type: Literal["person", "unit"] = "person" if which == "person" else "unit"
        object_id = self._who(s, name) if object_type == "person" else (found_unit or name)
        return RelationRecord(self._who(s, g["approver"]), object_type, object_id, form.kind,
                              form.valid_from, form.valid_to, None), None

    @staticmethod
    def _who(s: Session, given: str) -> str:
        """A person named by id, by address or by their unique name in either language
        (`森 大輔`, `Daisuke Mori`); anything else as given, for the rules to refuse."""
        given = " ".join(given.split())
        if "@" in given:
            found = member_by_email(s, given)
            return found.id if found is not None else given
        if s.get(Person, given) is not None:
            return given
        return _unique(s, Person, given) or given

    def _subject(self, s: Session, arg: str) -> str | None:
        """What `list` and `history` are about: a unit or a person (None: everything)."""
        if not arg:
            return None
        return self._unit(s, arg) or self._who(s, arg)

    @staticmethod
    def _unit(s: Session, given: str) -> str | None:
        """A unit named by id or by its unique name (`購買部`, `Procurement`); None: none."""
        given = " ".join(given.split())
        return given if unit(s, given) is not None else _unique(s, OrgUnit, given)

    # --- answering ---------------------------------------------------------------------------

    def _history(self, s: Session, mail: ParsedMail, sender: Member, arg: str) -> str:
        rows = self.registry.history(s, self._subject(s, arg))
        lines = self.registry.history_lines(rows)
        csv = OutgoingFile("relation-history.csv", "text", "csv",
                           self.registry.history_csv(rows).encode("utf-8"), "utf-8")
        return self._answer(s, mail, sender, "history", "history", arg,
                            lines=lines[-HISTORY_LINES:], total=len(lines),
                            attachments=[csv])

    def _outcome(self, s: Session, mail: ParsedMail, sender: Member, out: Outcome,
                 word: str, arg: str) -> str:
        relation = out.relation.describe() if out.relation else ""
        gaps = [{"first": g.first, "last": g.last} for g in out.gaps]
        if out.state == "refused":
            return self._answer(s, mail, sender, "refused", word, arg, reasons=out.refusals)
        if out.state == "gap":
            assert out.code is not None and out.relation is not None
            self.notifier.to_address(
                s, "relation_confirm", mail.from_addr, sender.locale,
                {"code": out.code, "word": word, "arg": arg, "gaps": gaps,
                 "object": label(out.relation), "relation": relation,
                 "hours": CONFIRM_HOURS}, in_reply_to=mail.message_id)
            return f"relation {word}: waiting for the registrar to accept a gap"
        return self._answer(s, mail, sender, "stored", word, arg,
                            relation_id=out.relation_id, relation=relation,
                            cancelled=out.cancelled, gaps=gaps,
                            object_id=out.relation.object_id if out.relation else "")

    def _answer(self, s: Session, mail: ParsedMail, sender: Member, outcome: str, word: str,
                arg: str, *, reasons: Sequence[Refusal] = (),
                problems: Sequence[Problem] = (), attachments: Sequence[OutgoingFile] = (),
                **ctx: Any) -> str:
        context: dict[str, Any] = {
            "outcome": outcome, "word": word, "arg": arg, "form": "", "lines": [],
            "total": 0, "relation_id": None, "relation": "", "cancelled": False, "gaps": [],
            "object_id": "", "problems": [{"en": p.en, "ja": p.ja} for p in problems],
            "reasons": [{"code": r.code, "text": r.text(), "facts": r.facts}
                        for r in reasons], **ctx}
        self.notifier.to_address(s, "relation_reply", mail.from_addr, sender.locale, context,
                                 in_reply_to=mail.message_id, attachments=attachments)
        detail = "; ".join([r.text() for r in reasons] + [p.en for p in problems])
        return f"relation {word}{' ' + arg if arg else ''}: {outcome}" + \
            (f" ({detail})" if detail else "")


_JA = {"update": "変更", "end": "終了", "register": "登録"}


def _unique(s: Session, table: type[Person] | type[OrgUnit], name: str) -> str | None:
    """The id of the one active row whose name or Japanese name is `name` (spacing and
    case aside); None when there is none, or more than one (never a guess)."""
    folded = "".join(name.split()).casefold()
    rows = s.execute(select(table.id, table.name, table.name_ja).where(table.active.is_(True)))
    ids = {rid for rid, en, ja in rows
           if folded in ("".join(en.split()).casefold(), "".join(ja.split()).casefold())}
    return ids.pop() if len(ids) == 1 else None
