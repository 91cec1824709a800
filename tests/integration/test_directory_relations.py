"""Roles and registered approval relations: imported from the sample, read back by lookups.

Runs on SQLite and, when RINGI_TEST_DATABASE_URL is set, on PostgreSQL (``db_url``).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.directory.importer import DirectoryDiff, import_directory_file
from daemon.directory.lookup import parent_unit, proxies_of, relations_for, role_holders
from daemon.store.db import Store
from daemon.store.directory_models import ApprovalRelation, RoleAssignment
from tests.support import ROOT

SAMPLE = ROOT / "samples" / "organisation.toml"
NOW = datetime.datetime(2026, 11, 22, 9, 0, tzinfo=datetime.UTC)
D = datetime.date
SATO_PROXY = """
[[relations]]
approver = "sato"
person = "suzuki"
kind = "proxy"
valid_from = 2026-01-01
valid_to = 2027-12-31
registered_by = "admin"
"""


@pytest.fixture
def fresh(db_url: str) -> Iterator[Store]:
    """A migrated, empty store."""
    store = Store(db_url)
    store.migrate()
    yield store
    store.dispose()


@pytest.fixture
def store(fresh: Store) -> Store:
    """The sample organisation imported at NOW."""
    assert import_directory_file(fresh, SAMPLE, NOW) is not None
    return fresh


def reimport(store: Store, tmp_path: Path, text: str, name: str = "org.toml") -> DirectoryDiff:
    target = tmp_path / name
    target.write_text(text, encoding="utf-8")
    diff = import_directory_file(store, target, NOW + datetime.timedelta(days=1))
    assert diff is not None
    return diff


def sample_text() -> str:
    return SAMPLE.read_text(encoding="utf-8")


def without(text: str, block: str) -> str:
    assert text.count(block) == 1, block
    return text.replace(block, "")


# ------------------------------------------------------------------- import


def test_first_import_reports_roles_and_relations(fresh: Store) -> None:
    store = fresh
    diff = import_directory_file(store, SAMPLE, NOW)
    assert diff is not None
    lines = diff.lines()
    assert "+ role eng/head suzuki" in lines
    assert "+ role accounting/accounting_staff kato" in lines
    assert "+ role procurement/purchasing_manager mori" in lines
    assert "+ relation watanabe->unit sales responsible 2026-01-01..2027-12-31" in lines
    assert "+ relation takahashi->person brown proxy 2026-01-01..2027-12-31" in lines
    assert "+ relation sato->person suzuki proxy 2026-01-01..2027-12-31" in lines
    assert not [line for line in lines if line.startswith("!")]
    with store.transaction() as s:
        roles = s.scalars(select(RoleAssignment)).all()
        relations = s.scalars(select(ApprovalRelation)).all()
    assert len(roles) == 9 and all(r.active for r in roles)
    assert len(relations) == 3 and all(r.active for r in relations)
    assert {(r.registered_by, r.registered_at) for r in relations} == {("admin", NOW)}


def test_importing_the_same_file_again_changes_nothing(store: Store) -> None:
    diff = import_directory_file(store, SAMPLE, NOW)
    assert diff is not None and diff.empty and diff.lines() == ["no changes"]


# -------------------------------------------------------------------- roles


def test_role_holders(store: Store) -> None:
    with store.transaction() as s:
        heads = {u: [m.id for m in role_holders(s, u, "head")]
                 for u in ("eng", "sales", "hq", "accounting", "procurement", "design")}
        assert heads == {"eng": ["suzuki"], "sales": ["watanabe"], "hq": ["yamamoto"],
                         "accounting": ["ito"], "procurement": ["mori"], "design": []}
        (kato,) = role_holders(s, "accounting", "accounting_staff")
        assert kato.id == "kato" and kato.unit is not None and kato.unit.id == "accounting"
        assert kato.position is not None and kato.position.id == "staff"
        assert [m.id for m in role_holders(s, "accounting", "accounting_manager")] == ["ito"]
        assert [m.id for m in role_holders(s, "procurement", "buyer")] == ["clark"]
        assert [m.id for m in role_holders(s, "procurement", "purchasing_manager")] == ["mori"]
        assert role_holders(s, "eng", "buyer") == []
        assert role_holders(s, "nowhere", "head") == []


def test_parent_unit_climbs_to_the_root(store: Store) -> None:
    with store.transaction() as s:
        chain = []
        unit = parent_unit(s, "design")
        while unit is not None:
            chain.append(unit.id)
            unit = parent_unit(s, unit.id)
        assert chain == ["eng", "hq"]
        assert parent_unit(s, "hq") is None
        assert parent_unit(s, "nowhere") is None
        # design has no head: climbing one step finds eng's
        eng = parent_unit(s, "design")
        assert eng is not None and [m.id for m in role_holders(s, eng.id, "head")] == ["suzuki"]


def test_several_holders_come_back_by_person_id(store: Store, tmp_path: Path) -> None:
    text = sample_text() + '\n[[roles]]\nunit = "eng"\nrole = "head"\nperson = "sato"\n'
    assert "+ role eng/head sato" in reimport(store, tmp_path, text).lines()
    with store.transaction() as s:
        assert [m.id for m in role_holders(s, "eng", "head")] == ["sato", "suzuki"]


def test_roles_of_inactive_people_are_not_returned(store: Store, tmp_path: Path) -> None:
    text = sample_text().replace('unit = "procurement"\nposition = "staff"',
                        'unit = "procurement"\nposition = "staff"\nactive = false')
    reimport(store, tmp_path, text)
    with store.transaction() as s:
        assert role_holders(s, "procurement", "buyer") == []  # clark is inactive


def test_removed_role_is_deactivated_and_comes_back(store: Store, tmp_path: Path) -> None:
    block = '[[roles]]\nunit = "accounting"\nrole = "accounting_staff"\nperson = "kato"\n'
    diff = reimport(store, tmp_path, without(sample_text(), block))
    assert diff.lines() == ["- role accounting/accounting_staff kato"]
    with store.transaction() as s:
        assert role_holders(s, "accounting", "accounting_staff") == []
        row = s.scalar(select(RoleAssignment).where(RoleAssignment.person_id == "kato"))
        assert row is not None and row.active is False  # kept, not deleted
    diff = reimport(store, tmp_path, sample_text(), "again.toml")
    assert diff.lines() == ["~ role accounting/accounting_staff kato (active)"]
    with store.transaction() as s:
        assert [m.id for m in role_holders(s, "accounting", "accounting_staff")] == ["kato"]


# ---------------------------------------------------------------- relations


@pytest.mark.parametrize(
    ("on", "expected"),
    [
        (D(2025, 12, 31), []),  # the day before valid_from
        (D(2026, 1, 1), ["watanabe"]),  # valid_from
        (D(2026, 11, 22), ["watanabe"]),
        (D(2027, 12, 31), ["watanabe"]),  # valid_to is inclusive
        (D(2028, 1, 1), []),  # the day after
    ],
)
def test_relations_for_unit_at_the_boundaries(
    store: Store, on: datetime.date, expected: list[str]
) -> None:
    with store.transaction() as s:
        found = relations_for(s, unit_id="sales", on=on)
        assert [r.approver_id for r in found] == expected
        assert all((r.object_type, r.object_id, r.kind) == ("unit", "sales", "responsible")
                   for r in found)
        # a unit's relation is not a relation for its people, nor a proxy relation
        assert relations_for(s, person_id="smith", on=on) == []
        assert relations_for(s, unit_id="sales", on=on, kind="proxy") == []


@pytest.mark.parametrize(
    ("on", "expected"),
    [(D(2025, 12, 31), []), (D(2026, 1, 1), ["takahashi"]), (D(2027, 12, 31), ["takahashi"]),
     (D(2028, 1, 1), [])],
)  # fmt: skip
def test_relations_for_person_by_kind(store: Store, on: datetime.date, expected: list[str]) -> None:
    with store.transaction() as s:
        found = relations_for(s, person_id="brown", on=on, kind="proxy")
        assert [r.approver_id for r in found] == expected
        assert relations_for(s, person_id="brown", on=on) == []  # no responsible relation


@pytest.mark.parametrize(
    ("on", "suzuki", "brown"),
    [
        (D(2025, 12, 31), [], []),
        (D(2026, 1, 1), ["sato"], ["takahashi"]),
        (D(2027, 12, 31), ["sato"], ["takahashi"]),
        (D(2028, 1, 1), [], []),
    ],
)
def test_proxies_of(store: Store, on: datetime.date, suzuki: list[str], brown: list[str]) -> None:
    with store.transaction() as s:
        assert [m.id for m in proxies_of(s, "suzuki", on)] == suzuki
        assert [m.id for m in proxies_of(s, "brown", on)] == brown
        # the relation is one way: sato stands in for suzuki, not the reverse
        assert proxies_of(s, "sato", on) == []
        assert proxies_of(s, "watanabe", on) == []
        for m in proxies_of(s, "suzuki", on):
            assert m.unit is not None and m.unit.id == "eng" and m.rank == 20


def test_open_ended_relation_never_ends(store: Store, tmp_path: Path) -> None:
    text = sample_text() + (
        '\n[[relations]]\napprover = "yamamoto"\nperson = "watanabe"\nkind = "responsible"\n'
        "valid_from = 2026-06-01\n"
    )
    diff = reimport(store, tmp_path, text)
    assert diff.lines() == ["+ relation yamamoto->person watanabe responsible 2026-06-01.."]
    with store.transaction() as s:
        assert relations_for(s, person_id="watanabe", on=D(2026, 5, 31)) == []
        (rel,) = relations_for(s, person_id="watanabe", on=D(2999, 12, 31))
        assert rel.approver_id == "yamamoto" and rel.valid_to is None
        assert rel.registered_by is None


def test_relations_for_needs_exactly_one_object(store: Store) -> None:
    with store.transaction() as s:
        with pytest.raises(ValueError, match="exactly one"):
            relations_for(s, on=D(2026, 1, 1))
        with pytest.raises(ValueError, match="exactly one"):
            relations_for(s, person_id="smith", unit_id="sales", on=D(2026, 1, 1))


def test_removed_relation_is_deactivated_and_reported(store: Store, tmp_path: Path) -> None:
    diff = reimport(store, tmp_path, without(sample_text(), SATO_PROXY))
    assert diff.lines() == ["- relation sato->person suzuki proxy 2026-01-01..2027-12-31"]
    assert diff.as_dict()["deactivated"] == [
        "relation sato->person suzuki proxy 2026-01-01..2027-12-31"
    ]
    with store.transaction() as s:
        assert proxies_of(s, "suzuki", D(2026, 6, 1)) == []
        assert relations_for(s, person_id="suzuki", on=D(2026, 6, 1), kind="proxy") == []
        assert [m.id for m in proxies_of(s, "brown", D(2026, 6, 1))] == ["takahashi"]
        row = s.scalar(select(ApprovalRelation).where(ApprovalRelation.approver_id == "sato"))
        assert row is not None and row.active is False  # kept for history, not deleted
    # registered again: the same row comes back, stamped with the new registration time
    diff = reimport(store, tmp_path, sample_text(), "again.toml")
    assert diff.lines() == ["~ relation sato->person suzuki proxy 2026-01-01..2027-12-31 (active)"]
    with store.transaction() as s:
        assert [m.id for m in proxies_of(s, "suzuki", D(2026, 6, 1))] == ["sato"]
        rows = s.scalars(select(ApprovalRelation).where(ApprovalRelation.approver_id == "sato"))
        (row,) = rows.all()
        assert row.active and row.registered_at == NOW + datetime.timedelta(days=1)


def test_changed_period_is_a_change_not_a_new_relation(store: Store, tmp_path: Path) -> None:
    text = sample_text()
    changed = SATO_PROXY.replace("valid_to = 2027-12-31", "valid_to = 2026-03-31")
    diff = reimport(store, tmp_path, text.replace(SATO_PROXY, changed))
    assert diff.lines() == [
        "~ relation sato->person suzuki proxy 2026-01-01..2026-03-31 (valid_to)"
    ]
    with store.transaction() as s:
        assert [m.id for m in proxies_of(s, "suzuki", D(2026, 3, 31))] == ["sato"]
        assert proxies_of(s, "suzuki", D(2026, 4, 1)) == []
        assert len(s.scalars(select(ApprovalRelation)).all()) == 3


def test_relation_to_someone_gone_is_applied_with_a_warning(
    store: Store, tmp_path: Path
) -> None:
    # Renaming a person leaves relations naming the old id: accepted, but said out loud.
    diff = reimport(store, tmp_path, sample_text().replace('id = "sato"', 'id = "sato2"'))
    lines = diff.lines()
    assert "+ person sato2" in lines and "- person sato" in lines
    assert ("! relation sato->person suzuki proxy 2026-01-01..2027-12-31: approver 'sato' is "
            "not an active person in the directory") in lines
    assert diff.as_dict()["warnings"]
    with store.transaction() as s:
        assert proxies_of(s, "suzuki", D(2026, 6, 1)) == []  # sato is inactive now
