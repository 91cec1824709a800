"""What templates and the CLI see of a case: plain dicts in the reader's language."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from daemon.cases.casetypes import CaseType, CaseTypeRegistry
from daemon.directory.lookup import Member, member
from daemon.notify.wording import local_time as local_time  # (re-exported)
from daemon.notify.wording import money_text
from daemon.store.condition_models import Execution
from daemon.store.models import Attachment, Case, CaseEvent


def format_value(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind == "money":
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            return str(value)
        return f"{amount:,f}" if amount != amount.to_integral() else f"{amount:,.0f}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def person_name(s: Session, person_id: str | None, locale: str) -> str:
    if person_id is None:
        return ""
    found = member(s, person_id)
    return found.display_name(locale) if found else person_id


def snapshot_name(snapshot: dict[str, Any], locale: str) -> str:
    name = snapshot.get("name_ja" if locale == "ja" else "name") or snapshot.get("id", "")
    pos = snapshot.get("position_name_ja" if locale == "ja" else "position_name")
    return f"{name} ({pos})" if pos else str(name)


def execution_view(s: Session, case: Case, locale: str) -> dict[str, Any] | None:
    """The case's latest execution: what the requester is told about it (SPEC 6.5)."""
    ex = s.scalar(select(Execution).where(Execution.case_id == case.id)
                  .order_by(Execution.id.desc()).limit(1))
    if ex is None:
        return None
    return {
        "state": ex.state,
        "reason": ex.reason,
        "destination": ex.title or ex.destination,
        "due": ex.due_at,  # times stay datetimes: templates show them with `| when`
        "later": ex.due_at > ex.created_at,  # deferred to the destination's next opening
        "sent": ex.sent_at or "",
    }


def case_view(
    s: Session, case: Case, types: CaseTypeRegistry, locale: str
) -> dict[str, Any]:
    ct: CaseType | None = types.get(case.case_type)
    fields = []
    amount = ""
    if ct is not None:
        for spec in ct.fields:
            if spec.kind == "money" and not amount:  # the case's amount, for its subject
                amount = money_text(case.fields.get(spec.name), locale)
            if spec.name in case.fields:
                label = spec.label_ja if locale == "ja" else spec.label
                fields.append({"label": label,
                               "value": format_value(spec.kind, case.fields[spec.name])})
    # An approval a send-back undid no longer counts: each "approval undone" takes away
    # that person's latest approval still listed (undoing reaches the latest asks only).
    counted: list[CaseEvent] = []
    for e in s.scalars(
        select(CaseEvent)
        .where(CaseEvent.case_id == case.id, or_(CaseEvent.decision == "approve",
                                                 CaseEvent.kind == "approval undone"))
        .order_by(CaseEvent.seq, CaseEvent.id)
    ):
        if e.kind != "approval undone":
            counted.append(e)
            continue
        mine = [i for i, c in enumerate(counted) if c.actor_id == e.actor_id]
        if mine:
            del counted[mine[-1]]
    approvals = [
        {
            "name": snapshot_name(e.actor, locale),
            "at": e.at,
            "reason": e.reason or "",
        }
        for e in counted
    ]
    attachments = [
        {"filename": a.filename, "size": a.size, "sha256": a.sha256}
        for a in s.scalars(select(Attachment).where(Attachment.case_id == case.id)
                           .order_by(Attachment.id))
    ]
    type_title = (ct.title_ja if locale == "ja" else ct.title) if ct else case.case_type
    return {
        "number": case.number,
        "title": case.title,
        "type": case.case_type,
        "type_title": type_title,
        "state": case.state,
        "requester": person_name(s, case.requester_id, locale),
        "amount": amount,
        "created": case.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        "fields": fields,
        "approvals": approvals,
        "attachments": attachments,
        "execution": execution_view(s, case, locale),
    }


def who(m: Member, locale: str) -> str:
    pos = m.position
    pos_name = (pos.name_ja if locale == "ja" else pos.name) if pos else ""
    return f"{m.display_name(locale)} ({pos_name})" if pos_name else m.display_name(locale)
