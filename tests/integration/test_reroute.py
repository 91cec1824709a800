"""Waiting cases follow a directory import: posts that change hands, vacancies, resumes.

Each test files real requests over SMTP, imports a changed copy of the sample organisation
the way `ringi directory import` does (re-resolving in the import's transaction), and reads
every mail each person receives.
"""

from __future__ import annotations

from pathlib import Path

from daemon.directory.importer import import_directory_file
from tests.integration.orgworld import (
    ENG_HEAD,
    ORG,
    RELEASE,
    decide,
    event_kinds,
    file_release,
    org_file,
    running_world,
)
from tests.integration.test_outcomes import (
    ADMIN,
    BROWN,
    SATO,
    SMITH,
    SUZUKI,
    TAKAHASHI,
    TANAKA,
    YAMAMOTO,
    World,
    number_of,
    travel,
)
from tests.support import CapturingRelay

HQ_HEAD = '[[roles]]\nunit = "hq"\nrole = "head"\nperson = "yamamoto"\n'


def reorganise(w: World, tmp_path: Path, text: str, name: str = "org.toml") -> None:
    diff = import_directory_file(w.app.store, org_file(tmp_path, text, name), w.clock.now(),
                                 after=w.app.reroute_after_import)
    assert diff is not None and not diff.empty


def test_a_role_handed_over_moves_the_waiting_step(tmp_path: Path, db_url: str,
                                                   relay: CapturingRelay) -> None:
    with running_world(tmp_path, db_url, relay) as w:
        number, old = file_release(w)  # head of Engineering: Suzuki
        w.send(SMITH, "Trip", travel("20,000"))  # Sales line: Takahashi; not touched below
        w.one(SMITH)
        w.one(TAKAHASHI)
        reorganise(w, tmp_path, ORG.replace(ENG_HEAD, ENG_HEAD.replace("suzuki", "sato")))
        gone = w.one(SUZUKI)
        assert "ご判断は不要" in gone.subject and "佐藤" in gone.body
        new = w.one(SATO)
        assert "承認依頼" in new.subject and "組織の変更" in new.body and "鈴木" in new.body
        w.reply(old, SUZUKI, "承認")  # the old token died with the move
        assert "受付できません" in w.one(SUZUKI).subject
        assert w.case(number).state == "in_review"
        decide(w, new, SATO, "承認")
        assert "承認されました" in w.one(TANAKA).subject
        w.nothing_more(TAKAHASHI, SMITH, TANAKA)  # unchanged approvers hear nothing
        assert "reassigned" in event_kinds(w, number)


def test_a_vacant_post_holds_and_a_later_import_resumes(tmp_path: Path, db_url: str,
                                                        relay: CapturingRelay) -> None:
    with running_world(tmp_path, db_url, relay) as w:
        number, _ = file_release(w)
        vacant = ORG.replace(ENG_HEAD, "").replace(HQ_HEAD, "")  # no head to climb to
        reorganise(w, tmp_path, vacant)
        assert "ご判断は不要" in w.one(SUZUKI).subject
        held = w.one(TANAKA)
        assert "停止中" in held.subject and "理由: この段階の役職が空席です" in held.body
        alert = w.one(ADMIN)
        assert "held" in alert.subject and number in alert.body
        assert w.case(number).state == "held"
        # A new request meets the same vacancy: held at once, not sent to the administrator.
        w.send(TANAKA, "Release 2", RELEASE.replace("D-1", "D-2"))
        second = number_of(w.one(TANAKA))
        assert "停止中" in w.one(TANAKA).subject
        assert f"Case {second} is held" in w.one(ADMIN).subject  # told, not asked
        w.nothing_more(ADMIN, YAMAMOTO)
        # Filling the post resumes both, from where they stood.
        filled = vacant + '\n[[roles]]\nunit = "eng"\nrole = "head"\nperson = "brown"\n'
        reorganise(w, tmp_path, filled, "org2.toml")
        asks = w.new(BROWN, 2)
        assert {number_of(m) for m in asks} == {number, second}
        assert all("再開しました" in m.subject and "承認待ち" in m.body for m in w.new(TANAKA, 2))
        assert w.case(number).state == "in_review"
        decide(w, asks[0], BROWN, "approve")
        assert w.case(number_of(asks[0])).state == "approved"


def test_nobody_left_above_holds_never_approves(tmp_path: Path, db_url: str,
                                                relay: CapturingRelay) -> None:
    with running_world(tmp_path, db_url, relay) as w:
        w.send(TANAKA, "Trip", travel("12,000"))  # Engineering's line: Sato, then done
        number = number_of(w.one(TANAKA))
        w.one(SATO)
        # Sato leaves the company; nobody else in Engineering ranks within the line.
        gone = ORG.replace('unit = "eng"\nposition = "chief"',
                           'unit = "eng"\nposition = "chief"\nactive = false', 1)
        reorganise(w, tmp_path, gone)
        held = w.one(TANAKA)
        assert "停止中" in held.subject and "理由: 上位に承認者がいません" in held.body
        w.nothing_more(SUZUKI, SATO)  # Sato is gone: no mail; nobody else asked
        assert w.case(number).state == "held"
        assert "approved" not in event_kinds(w, number)


def test_unchanged_import_changes_nothing(tmp_path: Path, db_url: str,
                                          relay: CapturingRelay) -> None:
    with running_world(tmp_path, db_url, relay) as w:
        number, _ = file_release(w)
        # Someone unrelated moves: every waiting ask is re-resolved, none changes.
        reorganise(w, tmp_path, ORG.replace('unit = "procurement"\nposition = "staff"',
                                            'unit = "sales"\nposition = "staff"', 1))
        w.nothing_more(SUZUKI, TANAKA, ADMIN)
        assert w.case(number).state == "in_review"
