"""What `ringi rules check` verifies about a condition set beyond its own syntax.

The people and units a set names must exist in the directory ringi uses (a setter nobody
can be, a proxy or co-approver who is not there, a subject unit that was renamed: each makes
the set silently never apply, or block a case). An example is judged the way a real case
would be: its values are read by their field's kind (money as an amount, a date as a date),
whichever case types the set names, or all of them when it names none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.conditions.sets import ConditionSet, Example
from daemon.directory.importer import read_directory_file
from daemon.routing.templates import Template
from daemon.store.models import OrgUnit, Person


@dataclass(frozen=True)
class Directory:
    """Who and what can be named: person id -> active, and unit ids."""

    people: Mapping[str, bool]
    units: frozenset[str]
    source: str


def directory_in_store(s: Session) -> Directory | None:
    """The directory as imported into the database; None while it is empty."""
    people = {pid: bool(active) for pid, active in s.execute(select(Person.id, Person.active))}
    if not people:
        return None
    return Directory(people, frozenset(s.scalars(select(OrgUnit.id))), "the database")


def directory_in_file(path: Path) -> Directory:
    """The configured directory file, which the daemon imports at start (raises
    DirectoryFileError when it is invalid)."""
    data, _ = read_directory_file(path)
    return Directory({p.id: p.active for p in data.people},
                     frozenset(u.id for u in data.units), str(path))


def directory_problems(cs: ConditionSet, d: Directory) -> list[str]:
    """People and units the set names that the directory does not hold (or not actively,
    for those who would have to decide)."""
    problems = []
    deciders = [("setter", cs.setter)]
    if cs.recovery.proxy:
        deciders.append(("proxy", cs.recovery.proxy))
    deciders += [("co-approver (also_required)", p) for p in cs.recovery.also_required]
    for role, pid in deciders:
        if pid not in d.people:
            problems.append(f"{role} {pid!r} is not in the directory")
        elif not d.people[pid]:
            problems.append(f"{role} {pid!r} is inactive in the directory")
    problems += [f"subject person {pid!r} is not in the directory"
                 for pid in sorted(cs.people) if pid not in d.people]
    problems += [f"subject unit {uid!r} is not in the directory"
                 for uid in sorted(cs.units) if uid not in d.units]
    return problems


def template_problems(t: Template, d: Directory) -> list[str]:
    """Fixed approvers and units a workflow template names that the directory lacks: such a
    step finds nobody and every case reaching it goes to the administrator."""
    problems = []
    for phase in t.phases:
        for step in phase.steps:
            where = f"phase {phase.name}, step {step.name}"
            for pid in step.people:
                if pid not in d.people:
                    problems.append(f"{where}: approver {pid!r} is not in the directory")
                elif not d.people[pid]:
                    problems.append(f"{where}: approver {pid!r} is inactive in the directory")
            units = [step.unit] if step.unit else []
            units += [g["unit"] for g in step.groups.values() if isinstance(g.get("unit"), str)]
            problems += [f"{where}: unit {u!r} is not in the directory"
                         for u in units if u not in d.units]
    return problems


def example_kinds(cs: ConditionSet, ex: Example,
                  kinds_of: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Each field's kind for an example: its own case type's first, then those of every
    case type the set names (every case type when it names none), so `amount = "100"` is
    read as money whatever the example or the set leaves unsaid."""
    kinds: dict[str, str] = {}
    for name in sorted(cs.case_types or kinds_of):
        for field, kind in kinds_of.get(name, {}).items():
            kinds.setdefault(field, kind)
    kinds.update(kinds_of.get(ex.case_type, {}))
    return kinds


def example_problems(cs: ConditionSet, ex: Example,
                     kinds_of: Mapping[str, Mapping[str, str]]) -> list[str]:
    """An example for a case type that does not exist, or that the set does not cover."""
    if ex.case_type and ex.case_type not in kinds_of:
        return [f"example {ex.name}: unknown case type {ex.case_type!r}"]
    if ex.case_type and cs.case_types and ex.case_type not in cs.case_types:
        return [f"example {ex.name}: case type {ex.case_type!r} is not one the set covers "
                f"({', '.join(sorted(cs.case_types))})"]
    return []
