"""The relation rules on a directory import (SPEC 7): the file is the administrator's
registration, judged like any other.

Every relation in a directory file is registered by the configured administrator, the
neutral registrar: `registration.check` runs with them as registrar, so the
interested-party rules (registrar is the approver, the object or a member of the unit, the
registration qualification, the yearly cap, who may register a proxy) do not apply, and
everything else does: one responsible approver per object and day, an approver qualified
to approve, an approver and object person active in the file. A file keeps history, so a
relation may lie in the past; and what a person is today (gone, no longer qualified) is not
held against a relation that ended before today: the importer keeps it with a warning.

A file relation is judged against the file's other relations of the same object and
against the relations departments registered (`source` "registered") that are in force.
A file line naming exactly a registered relation (same approver, object, kind and first
day) takes it over; one that would stand beside a registered relation breaks the rules
like any second registration: the import is refused, naming the registered relation, and
the administrator ends it (`ringi relation end ID`) or leaves the line out.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from daemon.config import Config
from daemon.directory.records import DirectoryData, RelationRecord
from daemon.directory.registration import Party, Policy, check

# What a person is today, not held against a relation that ended before today.
_PRESENT_STATE = frozenset({"unknown_approver", "inactive_approver", "approver_not_qualified",
                            "unknown_object", "inactive_object"})


@dataclass(frozen=True)
class FileRules:
    """What the rules need on an import: the administrator (the registrar of every file
    relation), the approval qualification by rank (when a person's entry does not say),
    and the company's time zone (whose day says what is in force and what is history)."""

    admin: str
    approve_min_rank: int = 20
    zone: datetime.tzinfo = datetime.UTC

    @classmethod
    def from_config(cls, cfg: Config) -> FileRules:
        return cls(cfg.workflow.admin, cfg.relations.approve_min_rank, cfg.workflow.zone)

    def today(self, now: datetime.datetime) -> datetime.date:
        return now.astimezone(self.zone).date()


def _key(r: RelationRecord) -> tuple[str, str, str, str, datetime.date]:
    return (r.approver, r.object_type, r.object_id, r.kind, r.valid_from)


def file_refusals(data: DirectoryData, registered: Sequence[tuple[int, RelationRecord]],
                  rules: FileRules, today: datetime.date) -> list[str]:
    """`file:line: relation #N: reason` for every rule a file relation breaks (empty: the
    file may be applied). `registered`: the departments' relations in force, by id.

    A conflict between two file lines is reported once, at the later line, naming the
    earlier one."""
    ranks = {p.id: p.rank for p in data.positions}
    people = {p.id: p for p in data.people}

    def party(pid: str) -> Party | None:
        p = people.get(pid)
        if p is None:
            return None
        approve = p.may_approve if p.may_approve is not None \
            else ranks.get(p.position, -1) >= rules.approve_min_rank
        # The registration qualification is the registrar's; here that is the administrator.
        return Party(p.id, p.active, (p.unit,), True, approve)

    registrar = Party(rules.admin, True, (), True, True)
    policy = Policy(admin=rules.admin)
    taken_over = {_key(r) for r in data.relations}
    standing = [(rid, r) for rid, r in registered if _key(r) not in taken_over]
    rels = data.relations
    lines: Sequence[int | None] = data.relation_lines or [None] * len(rels)
    out: list[tuple[int, str]] = []
    for i, rel in enumerate(rels):
        obj = (rel.object_type, rel.object_id)
        where: dict[str, str] = {}
        for j, other in enumerate(rels[:i]):
            if (other.object_type, other.object_id) == obj:
                where.setdefault(other.describe(),
                                 f"line {lines[j]}" if lines[j] else f"relation #{j + 1}")
        for rid, other in standing:
            if (other.object_type, other.object_id) == obj:
                where.setdefault(other.describe(), (
                    f"registered relation {rid} by {other.registered_by or '-'}: end it "
                    f"first (ringi relation end {rid} --by {rules.admin}) or leave this "
                    "line out"))
        others = [r for j, r in enumerate(rels[:i]) if (r.object_type, r.object_id) == obj]
        others += [r for _, r in standing if (r.object_type, r.object_id) == obj]
        object_ = True if rel.object_type == "unit" else party(rel.object_id)
        found = check(rel, registrar, party(rel.approver), object_, others, policy=policy,
                      today=today, past_ok=True)
        if rel.valid_to is not None and rel.valid_to < today:
            found = [f for f in found if f.code not in _PRESENT_STATE]
        for refusal in found:
            text = refusal.text()
            if (other_text := refusal.facts.get("other")) in where:
                text += f" ({where[other_text]})"
            out.append((lines[i] or 0, _at(data.source, lines[i], f"relation #{i + 1}: {text}")))
    return [text for _, text in sorted(out, key=lambda e: e[0])]


def _at(source: str, line: int | None, message: str) -> str:
    if not source:
        return message
    return f"{source}:{line}: {message}" if line is not None else f"{source}: {message}"
