"""Requests handed in through drop folders: who is asking, is the form right, open the case.

Checks run twice: at the door (so a bad file goes to rejected/ with its reasons instead of
being acknowledged) and again when the stored input is processed (the directory may have
changed in between).
"""

from __future__ import annotations

import pwd
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from daemon.cases.casetypes import CaseType
from daemon.cases.workflow import NewRequest, StoredDocument, Workflow
from daemon.config import DropFolder
from daemon.directory.lookup import Member, member
from daemon.notify.compose import clean_line
from daemon.parsing.formfile import FormFileError, parse_form_file
from daemon.parsing.request import render_form, validate_fields
from daemon.store.models import InboundMessage, OrgUnit


class RequestRefused(Exception):
    """A drop input that is not a valid request; `person` is who should hear about it."""

    def __init__(self, message: str, person: Member | None = None, form: str = "",
                 message_ja: str = "") -> None:
        super().__init__(message)
        self.person = person
        self.form = form
        self.message_ja = message_ja or message

    def for_locale(self, locale: str) -> str:
        return self.message_ja if locale == "ja" else str(self)

    def both(self) -> str:
        """For files on a shared drive, read by whoever looks: English, then Japanese."""
        en = str(self)
        return en if self.message_ja == en else f"{en}\n\n{self.message_ja}"


@dataclass(frozen=True)
class CheckedRequest:
    requester: Member
    case_type: CaseType
    title: str
    values: dict[str, Any]


def owner_login(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _in_unit(s: Session, who: Member, unit_id: str) -> bool:
    current = who.unit.id if who.unit else None
    seen: set[str] = set()
    while current is not None and current not in seen:
        if current == unit_id:
            return True
        seen.add(current)
        unit = s.get(OrgUnit, current)
        current = unit.parent_id if unit else None
    return False


class DropRequestHandler:
    def __init__(self, workflow: Workflow) -> None:
        self.wf = workflow

    def identify(self, s: Session, folder: DropFolder, owner_uid: int) -> Member:
        if folder.person is not None:
            who = member(s, folder.person)
            if who is None or not who.person.active:
                raise RequestRefused(f"the drop folder {folder.name!r} belongs to "
                                     f"{folder.person!r}, who is not in the directory")
            return who
        login = owner_login(owner_uid)
        person_id = folder.owners.get(login) or folder.owners.get(str(owner_uid)) or login
        who = member(s, person_id)
        if who is None or not who.person.active:
            raise RequestRefused(f"the file belongs to the account {login!r}, which is not "
                                 "mapped to anyone in the directory; ask the administrator")
        assert folder.unit is not None
        if not _in_unit(s, who, folder.unit):
            raise RequestRefused(f"{who.person.name} is not a member of the unit "
                                 f"{folder.unit!r} this folder is for", who)
        return who

    def check(self, s: Session, requester: Member, form_bytes: bytes, suffix: str,
              name: str) -> CheckedRequest:
        try:
            parsed = parse_form_file(form_bytes, suffix, name)
        except FormFileError as exc:
            raise RequestRefused(str(exc), requester) from None
        key = parsed.form.type_key
        ct = self.wf.types.get(key) if key else None
        if ct is None:
            known = ", ".join(t.name for t in self.wf.types.all())
            what = f"the type {key!r} is not known" if key else "the form has no 'type' entry"
            raise RequestRefused(f"{what}; use one of: {known}", requester)
        try:
            values, problems = validate_fields(ct, parsed.form)
        except Exception as exc:  # a value the field readers choke on: refuse, never retry
            why = str(exc).split(";")[0][:200] or type(exc).__name__
            raise RequestRefused(f"a value in the form cannot be read ({why})", requester,
                                 render_form(ct, requester.locale),
                                 f"フォームの値を読み取れません（{why}）") from None
        if problems:
            raise RequestRefused("\n".join(f"- {p.message}" for p in problems), requester,
                                 render_form(ct, requester.locale),
                                 "\n".join(f"- {p.message_ja}" for p in problems))
        title = clean_line(parsed.title) or (ct.title_ja if requester.locale == "ja"
                                             else ct.title)
        return CheckedRequest(requester, ct, title, values)

    def handle(self, s: Session, row: InboundMessage) -> str:
        """Open the case for a stored drop input (its meta says who and what)."""
        meta = row.meta or {}
        requester = member(s, str(meta.get("person")))
        if requester is None or not requester.person.active:
            return f"refused: requester {meta.get('person')!r} is no longer in the directory"
        try:
            checked = self.check(s, requester, row.raw, str(meta.get("suffix", "")),
                                 str(meta.get("entry", "form")))
        except RequestRefused as exc:
            self.notify_refused(s, requester, str(meta.get("entry")),
                                str(meta.get("folder")), exc.for_locale(requester.locale),
                                exc.form)
            return f"refused: {exc}"
        docs = tuple(StoredDocument(d["filename"], d["content_type"], int(d["size"]),
                                    d["sha256"]) for d in meta.get("documents", []))
        case = self.wf.open_case(s, NewRequest(
            requester=requester, case_type=checked.case_type, title=checked.title,
            fields=checked.values, documents=docs, inbound_id=row.id,
            channel=f"drop folder {meta.get('folder')}",
        ))
        row.case_id = case.id
        return f"case {case.number} opened"

    def notify_refused(self, s: Session, who: Member | None, entry: str, folder: str,
                       reason: str, form: str = "") -> None:
        if who is None:
            return
        self.wf.notifier.to_member(s, "drop_rejected", who, {
            "entry": entry, "folder": folder, "reason": reason, "form": form,
            "recipient": who.display_name(who.locale),
        })
