"""Approval relations registered by the departments themselves (SPEC 7).

One service behind the `relation` mail commands and `ringi relation`: it judges a change
with daemon.directory.registration, stores nothing when it is refused, keeps a change that
would leave its object without a responsible approver aside until the registrar confirms
it (a one-time code, as condition changes do), and writes every stored change to the
relation's history (which any employee may read) and to the audit trail, in the change's
own transaction.

Registered relations (`source` "registered") live beside the administrator's, which come
from the directory file (`source` "file"): a directory import replaces only the file's.
Only a relation's registrar or the administrator may update or end it, and a file relation
changes only through the file.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import secrets
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from daemon.audit.trail import AuditTrail
from daemon.clock import Clock
from daemon.config import Config
from daemon.directory.importer import relation_record as record_of
from daemon.directory.lookup import member, parent_unit, unit
from daemon.directory.records import RelationRecord
from daemon.directory.registration import Gap, Party, Policy, Refusal, check, gaps
from daemon.store.directory_models import ApprovalRelation
from daemon.store.relation_models import RelationHistory, RelationRequest

Action = Literal["register", "update", "end"]
CONFIRM_HOURS = 72


@dataclass(frozen=True)
class Qualification:
    """Who may register and who may approve when the directory does not say: by rank."""

    register_min_rank: int = 0
    approve_min_rank: int = 20


@dataclass
class Outcome:
    """What became of a change: stored, refused (with every reason) or waiting for the
    registrar to accept the gaps it leaves (`code`: the one-time code to confirm with)."""

    state: Literal["stored", "refused", "gap"]
    relation: RelationRecord | None = None
    relation_id: int | None = None
    refusals: list[Refusal] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    code: str | None = None
    cancelled: bool = False  # an end before the relation began: it never holds


def code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


def as_json(r: RelationRecord, note: str = "") -> dict[str, Any]:
    return {"approver": r.approver, "object_type": r.object_type, "object_id": r.object_id,
            "kind": r.kind, "valid_from": r.valid_from.isoformat(),
            "valid_to": r.valid_to.isoformat() if r.valid_to else None,
            "registered_by": r.registered_by, "note": note}


def from_json(d: dict[str, Any]) -> RelationRecord:
    kind: Literal["person", "unit"] = "unit" if d["object_type"] == "unit" else "person"
    return RelationRecord(d["approver"], kind, d["object_id"], d["kind"],
                          datetime.date.fromisoformat(d["valid_from"]),
                          datetime.date.fromisoformat(d["valid_to"]) if d["valid_to"] else None,
                          d.get("registered_by"))


class RelationRegistry:
    def __init__(self, clock: Clock, audit: AuditTrail, policy: Policy,
                 qualification: Qualification, tz: datetime.tzinfo) -> None:
        self.clock = clock
        self.audit = audit
        self.policy = policy
        self.qualification = qualification
        self.tz = tz  # "today" is the company's day

    def today(self) -> datetime.date:
        return self.clock.now().astimezone(self.tz).date()

    # --- what the rules read -----------------------------------------------------------------

    def party(self, s: Session, person_id: str) -> Party | None:
        m = member(s, person_id)
        if m is None:
            return None
        units: list[str] = []
        here = m.unit
        while here is not None and here.id not in units:
            units.append(here.id)
            here = parent_unit(s, here.id)
        rank = m.rank if m.rank is not None else -1
        q = self.qualification
        may_register = m.person.may_register if m.person.may_register is not None \
            else rank >= q.register_min_rank
        may_approve = m.person.may_approve if m.person.may_approve is not None \
            else rank >= q.approve_min_rank
        return Party(m.id, m.person.active, tuple(units), may_register, may_approve)

    def object_state(self, s: Session, r: RelationRecord) -> Party | bool | None:
        if r.object_type == "person":
            return self.party(s, r.object_id)
        found = unit(s, r.object_id)
        return None if found is None else found.active

    def _in_force(self) -> tuple[ColumnElement[bool], ...]:
        """Active relations that hold today or later."""
        return (ApprovalRelation.active.is_(True), or_(
            ApprovalRelation.valid_to.is_(None), ApprovalRelation.valid_to >= self.today()))

    def standing(self, s: Session, r: RelationRecord) -> list[tuple[ApprovalRelation,
                                                                     RelationRecord]]:
        """The object's relations in force today or later."""
        rows = s.scalars(select(ApprovalRelation).where(
            ApprovalRelation.object_type == r.object_type,
            ApprovalRelation.object_id == r.object_id, *self._in_force())
            .order_by(ApprovalRelation.id))
        return [(row, record_of(row)) for row in rows]

    def made_this_year(self, s: Session, registrar: str) -> int:
        start = datetime.datetime(self.today().year, 1, 1, tzinfo=self.tz)
        return s.scalar(select(func.count()).select_from(RelationHistory).where(
            RelationHistory.by == registrar, RelationHistory.action == "registered",
            RelationHistory.at >= start)) or 0

    # --- changing ----------------------------------------------------------------------------

    def change(self, s: Session, by: str, action: Action, new: RelationRecord,
               relation_id: int | None, channel: str, note: str = "",
               accept_gap: bool = False) -> Outcome:
        """Judge and, unless refused or waiting on a gap, store the change."""
        new = replace(new, registered_by=by)
        row = s.get(ApprovalRelation, relation_id) if relation_id is not None else None
        old = record_of(row) if row is not None else None
        if action != "register":
            problem = self._may_change(row, by)
            if problem is not None:
                return Outcome("refused", new, relation_id, [problem])
            assert old is not None
            new = replace(new, registered_by=old.registered_by)
        registrar = self.party(s, by)
        standing = self.standing(s, new)
        others = [rec for r, rec in standing if row is None or r.id != row.id]
        holds = [record_of(r) for r in s.scalars(select(ApprovalRelation).where(
            ApprovalRelation.approver_id == by, *self._in_force()))]
        # Ended before its first day: the relation is cancelled whole (judged as it stands).
        cancel = action == "end" and old is not None and new.valid_to is not None \
            and new.valid_to < old.valid_from
        judged = old if cancel and old is not None else new
        refusals = check(judged, registrar, self.party(s, judged.approver),
                         self.object_state(s, judged), others, policy=self.policy,
                         today=self.today(), made_this_year=self.made_this_year(s, by), old=old,
                         registrars=holds)
        if refusals:
            return Outcome("refused", new, relation_id, refusals)
        found = gaps([rec for _, rec in standing], others if cancel else [*others, new],
                     self.today())
        if found and not accept_gap:
            if channel != "mail":  # a command is simply run again with --accept-gap
                return Outcome("gap", new, relation_id, gaps=found)
            code = secrets.token_hex(6).upper()  # 48 bits, single-use, expiring
            now = self.clock.now()
            s.add(RelationRequest(
                registrar_id=by, action=action, relation_id=relation_id,
                change={**as_json(new, note), "channel": channel},
                gaps="; ".join(g.describe() for g in found), code_hash=code_hash(code),
                created_at=now, expires_at=now + datetime.timedelta(hours=CONFIRM_HOURS)))
            return Outcome("gap", new, relation_id, gaps=found, code=code)
        stored = self._store(s, by, action, judged, row, channel, note, found, cancel)
        return Outcome("stored", judged, stored, gaps=found, cancelled=cancel)

    def confirm(self, s: Session, by: str, code: str, channel: str) -> Outcome | None:
        """The registrar accepts the gaps of a change kept aside; None: no such change."""
        req = s.scalar(select(RelationRequest).where(
            RelationRequest.code_hash == code_hash(code), RelationRequest.registrar_id == by,
            RelationRequest.state == "pending",
            RelationRequest.expires_at > self.clock.now()).with_for_update())
        if req is None:
            return None
        req.state = "confirmed"
        action: Action = "register" if req.action == "register" else \
            "update" if req.action == "update" else "end"
        return self.change(s, by, action, from_json(req.change), req.relation_id, channel,
                           note=str(req.change.get("note") or ""), accept_gap=True)

    def _may_change(self, row: ApprovalRelation | None, by: str) -> Refusal | None:
        if row is None or not row.active:
            return Refusal("unknown_relation")
        if row.source != "registered":
            return Refusal("file_relation")
        if by in (row.registered_by, self.policy.admin):
            return None
        return Refusal("not_registrar", {"registrar": row.registered_by or "-"})

    def _store(self, s: Session, by: str, action: Action, new: RelationRecord,
               row: ApprovalRelation | None, channel: str, note: str,
               found: list[Gap], cancel: bool = False) -> int:
        now = self.clock.now()
        before = as_json(record_of(row), row.note) if row is not None else None
        if row is None:
            row = ApprovalRelation(
                approver_id=new.approver, object_type=new.object_type,
                object_id=new.object_id, kind=new.kind, valid_from=new.valid_from,
                valid_to=new.valid_to, registered_by=by, registered_at=now, active=True,
                source="registered", note=note)
            s.add(row)
        elif cancel:
            row.active = False
        else:
            row.approver_id, row.valid_from, row.valid_to = \
                new.approver, new.valid_from, new.valid_to
            if note:
                row.note = note
        s.flush()
        done = "cancelled" if cancel else \
            {"register": "registered", "update": "updated", "end": "ended"}[action]
        after = None if cancel else as_json(new, row.note)
        s.add(RelationHistory(
            relation_id=row.id, at=now, by=by, channel=channel, action=done, before=before,
            after=after, approver_id=new.approver, object_type=new.object_type,
            object_id=new.object_id, note="; ".join(f"gap accepted: {g.describe()}"
                                                    for g in found)))
        self.audit.append(s, f"relation {done}", by, f"relation {row.id}",
                          {"before": before, "after": after, "channel": channel,
                           "gaps": [g.describe() for g in found]})
        return row.id

    # --- reading -----------------------------------------------------------------------------

    def listing(self, s: Session, subject: str | None) -> list[str]:
        """One line per relation in force today or later, naming `subject` (or all)."""
        q = select(ApprovalRelation).where(*self._in_force())
        if subject:
            q = q.where(or_(ApprovalRelation.approver_id == subject,
                            ApprovalRelation.object_id == subject))
        return [f"{row.id:>5}  {record_of(row).describe()}  ({row.source}, registered by "
                f"{row.registered_by or '-'})" + (f"  {row.note}" if row.note else "")
                for row in s.scalars(q.order_by(ApprovalRelation.object_type,
                                                ApprovalRelation.object_id,
                                                ApprovalRelation.valid_from))]

    @staticmethod
    def history_lines(rows: list[RelationHistory]) -> list[str]:
        out = []
        for h in rows:
            after = from_json(h.after).describe() if h.after else "-"
            before = f" (was {from_json(h.before).describe()})" if h.before else ""
            out.append(f"{h.at.isoformat(timespec='minutes')}  relation {h.relation_id} "
                       f"{h.action} by {h.by} ({h.channel}): {after}{before}"
                       + (f"; {h.note}" if h.note else ""))
        return out

    def history(self, s: Session, subject: str | None) -> list[RelationHistory]:
        """Every stored change, of relations naming `subject` (a person as approver or
        object, or a unit), oldest first."""
        q = select(RelationHistory).order_by(RelationHistory.id)
        if subject:
            q = q.where(or_(RelationHistory.approver_id == subject,
                            RelationHistory.object_id == subject))
        return list(s.scalars(q))

    @staticmethod
    def history_csv(rows: list[RelationHistory]) -> str:
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["id", "relation", "at", "by", "channel", "action", "approver", "object",
                    "kind", "valid_from", "valid_to", "before", "note"])
        for h in rows:
            a = h.after or {}
            b = h.before or {}
            w.writerow([h.id, h.relation_id, h.at.isoformat(), h.by, h.channel, h.action,
                        a.get("approver", ""), f"{h.object_type} {h.object_id}",
                        a.get("kind", ""), a.get("valid_from", ""), a.get("valid_to") or "",
                        f"{b.get('approver', '')} {b.get('valid_from', '')}.."
                        f"{b.get('valid_to') or ''}" if b else "", h.note])
        return out.getvalue()


def registry_for(cfg: Config, clock: Clock, audit: AuditTrail) -> RelationRegistry:
    """The registry as configured (`[relations]`, the administrator, the time zone)."""
    rc = cfg.relations
    return RelationRegistry(
        clock, audit,
        Policy(admin=cfg.workflow.admin, unit_rule=rc.unit_rule, proxy_rule=rc.proxy_rule,
               yearly_cap=rc.yearly_cap),
        Qualification(rc.register_min_rank, rc.approve_min_rank), cfg.workflow.zone)
