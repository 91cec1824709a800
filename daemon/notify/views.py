"""What templates and the CLI see of a case: plain dicts in the reader's language."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from daemon.cases.casetypes import CaseType, CaseTypeRegistry
from daemon.directory.lookup import Member, member
from daemon.store.condition_models import Execution
from daemon.store.models import Attachment, Case, CaseEvent

_WEEKDAYS_JA = "月火水木金土日"


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


def local_time(when: dt.datetime, zone: str, locale: str) -> str:
    """A time as a reader expects it: in the named zone, their language, the zone shown."""
    try:
        local = when.astimezone(ZoneInfo(zone))
    except (ValueError, KeyError, OSError):
        local, zone = when.astimezone(dt.UTC), "UTC"
    if locale == "ja":
        return (f"{local.year}年{local.month}月{local.day}日"
                f"({_WEEKDAYS_JA[local.weekday()]}) {local:%H:%M} ({zone})")
    return f"{local:%a} {local.day} {local:%b %Y %H:%M} ({zone})"


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
        "due": local_time(ex.due_at, ex.timezone, locale),
        "later": ex.due_at > ex.created_at,  # deferred to the destination's next opening
        "sent": local_time(ex.sent_at, ex.timezone, locale) if ex.sent_at else "",
    }


def case_view(
    s: Session, case: Case, types: CaseTypeRegistry, locale: str
) -> dict[str, Any]:
    ct: CaseType | None = types.get(case.case_type)
    fields = []
    if ct is not None:
        for spec in ct.fields:
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
            "at": e.at.strftime("%Y-%m-%d %H:%M UTC"),
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
