"""A directory import judges its relations by the registration rules (SPEC 7), with the
administrator as the neutral registrar, and stores the people's qualifications.

Real store: SQLite and, when RINGI_TEST_DATABASE_URL is set, PostgreSQL (``db_url``).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from daemon.directory.export import from_snapshot, snapshot
from daemon.directory.filerules import FileRules
from daemon.directory.importer import DirectoryDiff, apply_directory, import_directory_file
from daemon.directory.loader import DirectoryFileError
from daemon.store.db import Store
from daemon.store.directory_models import ApprovalRelation
from daemon.store.models import DirectoryImport, Person
from tests.support import ROOT

SAMPLE = ROOT / "samples" / "organisation.toml"
NOW = datetime.datetime(2026, 11, 22, 9, 0, tzinfo=datetime.UTC)
RULES = FileRules(admin="admin", approve_min_rank=20, zone=datetime.UTC)
WATANABE_SALES = "watanabe->unit sales responsible 2026-01-01..2027-12-31"
# the line of the sample's relation #1 (watanabe, responsible for sales)
SALES_LINE = SAMPLE.read_text(encoding="utf-8").split('approver = "watanabe"')[0].count("\n")


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """The sample organisation, imported under the rules at NOW."""
    store = Store(db_url)
    store.migrate()
    assert import_directory_file(store, SAMPLE, NOW, rules=RULES) is not None
    yield store
    store.dispose()


def sample() -> str:
    return SAMPLE.read_text(encoding="utf-8")


def relation(approver: str, obj: str, kind: str, valid_from: str, valid_to: str = "") -> str:
    until = f"valid_to = {valid_to}\n" if valid_to else ""
    return (f'\n[[relations]]\napprover = "{approver}"\n{obj}\nkind = "{kind}"\n'
            f"valid_from = {valid_from}\n{until}")


def with_person_key(text: str, person: str, line: str) -> str:
    anchor = f'id = "{person}"\n'
    assert text.count(anchor) == 1, person
    return text.replace(anchor, f"{anchor}{line}\n")


def line_of(text: str, block: str) -> int:
    """The line of the block's `[[relations]]` header."""
    return text[: text.index(block)].count("\n") + 2  # the block opens with a newline


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "org.toml"
    path.write_text(text, encoding="utf-8")
    return path


def reimport(store: Store, tmp_path: Path, text: str) -> DirectoryDiff:
    diff = import_directory_file(store, write(tmp_path, text), NOW, rules=RULES)
    assert diff is not None
    return diff


def state(store: Store) -> tuple[Any, ...]:
    """Everything an import could change."""
    with store.transaction() as s:
        rows = s.scalars(select(ApprovalRelation).order_by(ApprovalRelation.id))
        relations = [(r.approver_id, r.object_id, r.kind, r.valid_from, r.valid_to, r.active,
                      r.source) for r in rows]
        return (snapshot(s), relations, s.scalar(select(func.count(DirectoryImport.id))),
                [(p.id, p.active) for p in s.scalars(select(Person).order_by(Person.id))])


def refused(store: Store, tmp_path: Path, text: str) -> list[str]:
    before = state(store)
    with pytest.raises(DirectoryFileError) as err:
        import_directory_file(store, write(tmp_path, text), NOW, rules=RULES)
    assert state(store) == before  # nothing changed
    return err.value.errors


# --------------------------------------------------------------------------- refusals

SECOND = relation("yamamoto", 'unit = "sales"', "responsible", "2026-06-01")
STAFF = relation("tanaka", 'person = "sato"', "proxy", "2026-01-01")
NOBODY = relation("nobody", 'person = "smith"', "responsible", "2026-01-01")
GHOST = relation("watanabe", 'person = "ghost"', "responsible", "2026-01-01")


@pytest.mark.parametrize(("block", "reason", "edit"), [
    (SECOND, f"unit sales already has a responsible approver then: {WATANABE_SALES} "
             f"(line {SALES_LINE})", None),
    (STAFF, "tanaka is not qualified to approve", None),
    (NOBODY, "nobody is not in the directory", None),
    (GHOST, "person ghost is not in the directory", None),
    (relation("mori", 'person = "kato"', "responsible", "2026-01-01"),
     "mori is no longer active in the directory", ("mori", "active = false")),
    (relation("ito", 'person = "kato"', "responsible", "2026-01-01"),
     "person kato is no longer active in the directory", ("kato", "active = false")),
    # the file says so, whatever the rank (brown is a section manager)
    (relation("brown", 'person = "smith"', "responsible", "2026-01-01"),
     "brown is not qualified to approve", ("brown", "may_approve = false")),
])  # fmt: skip
def test_a_relation_breaking_a_rule_refuses_the_file_with_its_line(
    store: Store, tmp_path: Path, block: str, reason: str, edit: tuple[str, str] | None
) -> None:
    text = sample() + block
    if edit is not None:
        text = with_person_key(text, *edit)
    errors = refused(store, tmp_path, text)
    assert errors == [f"{tmp_path / 'org.toml'}:{line_of(text, block)}: relation #4: {reason}"]
    assert not any(" you" in e for e in errors)  # the file's wording, not a clerk's


def test_every_broken_relation_is_named_at_once(store: Store, tmp_path: Path) -> None:
    text = sample() + SECOND + STAFF + NOBODY
    src = tmp_path / "org.toml"
    assert refused(store, tmp_path, text) == [
        f"{src}:{line_of(text, SECOND)}: relation #4: unit sales already has a responsible "
        f"approver then: {WATANABE_SALES} (line {SALES_LINE})",
        f"{src}:{line_of(text, STAFF)}: relation #5: tanaka is not qualified to approve",
        f"{src}:{line_of(text, NOBODY)}: relation #6: nobody is not in the directory",
    ]


@pytest.mark.parametrize(("block", "reason"), [
    (relation("smith", 'person = "smith"', "responsible", "2026-01-01"),
     "'smith' cannot be their own approver"),
    (relation("watanabe", 'person = "smith"', "responsible", "2026-05-01", "2026-04-30"),
     "valid_to 2026-04-30 is before valid_from 2026-05-01"),
    (relation("watanabe", 'unit = "eng"', "proxy", "2026-01-01"),
     "a proxy stands in for a person: give 'person', not 'unit'"),
])  # fmt: skip
def test_rules_the_loader_already_checks_are_named_once(
    store: Store, tmp_path: Path, block: str, reason: str
) -> None:
    text = sample() + block
    (error,) = refused(store, tmp_path, text)
    assert error.startswith(f"{tmp_path / 'org.toml'}:") and error.endswith(reason)
    assert "relation #4: " in error


def test_a_second_responsible_is_refused_within_the_new_file_too(
    store: Store, tmp_path: Path
) -> None:
    first = relation("watanabe", 'person = "smith"', "responsible", "2026-01-01")
    second = relation("yamamoto", 'person = "smith"', "responsible", "2026-12-01",
                      "2026-12-31")
    text = sample() + first + second
    assert refused(store, tmp_path, text) == [
        f"{tmp_path / 'org.toml'}:{line_of(text, second)}: relation #5: person smith already "
        "has a responsible approver then: watanabe->person smith responsible 2026-01-01.. "
        f"(line {line_of(text, first)})"]  # once, at the later line
    # one after the other is fine
    text = text.replace("valid_from = 2026-01-01\n\n[[relations]]\napprover = \"yamamoto\"",
                        "valid_from = 2026-01-01\nvalid_to = 2026-11-30\n\n[[relations]]\n"
                        "approver = \"yamamoto\"")
    assert "+ relation yamamoto->person smith responsible 2026-12-01..2026-12-31" in \
        reimport(store, tmp_path, text).lines()


# --------------------------------------------------------------------- accepted


def test_the_administrator_may_register_where_they_are_an_interested_party(
    store: Store, tmp_path: Path
) -> None:
    # admin belongs to hq and is the object person: a clerk would be refused both.
    text = sample() + relation("yamamoto", 'unit = "hq"', "responsible", "2026-12-01") \
        + relation("yamamoto", 'person = "admin"', "responsible", "2026-12-01") \
        + relation("sato", 'person = "admin"', "proxy", "2026-12-01")
    lines = reimport(store, tmp_path, text).lines()
    assert "+ relation yamamoto->unit hq responsible 2026-12-01.." in lines
    assert "+ relation yamamoto->person admin responsible 2026-12-01.." in lines
    assert "+ relation sato->person admin proxy 2026-12-01.." in lines  # no responsible rule


def test_past_relations_are_history_not_errors(store: Store, tmp_path: Path) -> None:
    before = relation("watanabe", 'unit = "sales"', "responsible", "2024-01-01", "2025-12-31")
    gone = relation("retired", 'unit = "eng"', "responsible", "2020-04-01", "2021-03-31")
    text = sample() + before + gone
    lines = reimport(store, tmp_path, text).lines()
    assert "+ relation watanabe->unit sales responsible 2024-01-01..2025-12-31" in lines
    assert "+ relation retired->unit eng responsible 2020-04-01..2021-03-31" in lines
    # someone who left long ago is kept with the warning, as before the rules
    assert ("! relation retired->unit eng responsible 2020-04-01..2021-03-31: approver "
            "'retired' is not an active person in the directory") in lines
    # ... but a history that overlaps is still two responsible approvers at once
    overlap = relation("yamamoto", 'unit = "sales"', "responsible", "2025-06-01", "2025-08-31")
    (error,) = refused(store, tmp_path, text + overlap)
    assert error.endswith("relation #6: unit sales already has a responsible approver then: "
                          "watanabe->unit sales responsible 2024-01-01..2025-12-31 "
                          f"(line {line_of(text, before)})")


# ---------------------------------------------------------- registered relations


def register(store: Store, approver: str, obj: str, kind: str, start: datetime.date) -> int:
    """A department's registration, as the registry stores it."""
    with store.transaction() as s:
        row = ApprovalRelation(approver_id=approver, object_type="person", object_id=obj,
                               kind=kind, valid_from=start, valid_to=None,
                               registered_by="brown", registered_at=NOW, active=True,
                               source="registered", note="")
        s.add(row)
        s.flush()
        return row.id


def test_a_file_line_beside_a_registered_relation_is_refused(
    store: Store, tmp_path: Path
) -> None:
    rid = register(store, "watanabe", "smith", "responsible", datetime.date(2026, 12, 1))
    block = relation("yamamoto", 'person = "smith"', "responsible", "2026-01-01")
    text = sample() + block
    assert refused(store, tmp_path, text) == [
        f"{tmp_path / 'org.toml'}:{line_of(text, block)}: relation #4: person smith already "
        "has a responsible approver then: watanabe->person smith responsible 2026-12-01.. "
        f"(registered relation {rid} by brown: end it first (ringi relation end {rid} --by "
        "admin) or leave this line out)"]


def test_a_file_line_naming_a_registered_relation_takes_it_over(
    store: Store, tmp_path: Path
) -> None:
    rid = register(store, "watanabe", "smith", "responsible", datetime.date(2026, 12, 1))
    text = sample() + relation("watanabe", 'person = "smith"', "responsible", "2026-12-01")
    assert reimport(store, tmp_path, text).lines() == [
        "~ relation watanabe->person smith responsible 2026-12-01.. (registered_by, source)"]
    with store.transaction() as s:
        row = s.get(ApprovalRelation, rid)
        assert row is not None and row.source == "file" and row.active


# --------------------------------------------------------------- qualifications


def test_qualifications_set_and_cleared_by_import(store: Store, tmp_path: Path) -> None:
    text = with_person_key(sample(), "tanaka", "may_approve = true")
    text = with_person_key(text, "smith", "may_register = false")
    block = relation("tanaka", 'person = "sato"', "proxy", "2026-12-01")
    diff = reimport(store, tmp_path, text + block)  # tanaka is now qualified to approve
    assert sorted(diff.lines()) == sorted([
        "~ person tanaka (may_approve)", "~ person smith (may_register)",
        "+ relation tanaka->person sato proxy 2026-12-01.."])
    with store.transaction() as s:
        got = {p.id: (p.may_register, p.may_approve) for p in s.scalars(select(Person))}
        backup = snapshot(s)
    assert got["tanaka"] == (None, True) and got["smith"] == (False, None)
    assert got["suzuki"] == (None, None)  # by rank
    # the export (a reorganisation's backup) carries them and gives them back
    people = {p[0]: p for p in backup["people"]}
    assert people["tanaka"][7:] == [None, True] and people["smith"][7:] == [False, None]
    back = {p.id: p for p in from_snapshot(backup).people}
    assert (back["tanaka"].may_approve, back["smith"].may_register) == (True, False)
    old_backup = {**backup, "people": [p[:7] for p in backup["people"]]}  # before the columns
    assert all(p.may_approve is None for p in from_snapshot(old_backup).people)
    # gone from the file: back to the rank (NULL); tanaka's proxy now breaks the rule
    (error,) = refused(store, tmp_path, sample() + block)
    assert error.endswith("relation #4: tanaka is not qualified to approve")
    diff = reimport(store, tmp_path, sample())
    assert sorted(diff.lines()) == sorted([
        "~ person tanaka (may_approve)", "~ person smith (may_register)",
        "- relation tanaka->person sato proxy 2026-12-01.."])
    with store.transaction() as s:
        got = {p.id: (p.may_register, p.may_approve) for p in s.scalars(select(Person))}
    assert got["tanaka"] == got["smith"] == (None, None)


def test_a_dry_run_is_judged_the_same(store: Store, tmp_path: Path) -> None:
    from daemon.directory.importer import read_directory_file

    data, _ = read_directory_file(write(tmp_path, sample() + STAFF))
    with store.sessions() as s:
        with pytest.raises(DirectoryFileError) as err:
            apply_directory(s, data, NOW, RULES)
        s.rollback()
    assert err.value.errors[0].endswith("relation #4: tanaka is not qualified to approve")
