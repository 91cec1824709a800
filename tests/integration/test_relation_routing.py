"""Cases routed by a relation a department registered, while that relation changes, ends
and begins (SPEC 7 and 10): an ask follows the relation's new approver, a case whose
relation ended with nobody after it is held (never approved by absence) and resumes when a
new relation begins. On the organisation no other suite uses (tests/data/kaisha), whose
purchase route asks the responsible approver of the requester's unit. Real mail."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from daemon.directory.importer import relation_record
from daemon.directory.relations import registry_for
from daemon.store.directory_models import ApprovalRelation
from tests.integration.orgworld import case_steps, decide
from tests.integration.test_outcomes import World, number_of, start_world
from tests.integration.test_unseen_org import (
    ABE,
    FUJII,
    HAYASHI,
    LEE,
    ORG,
    PURCHASE,
    YOSHIDA,
    fresh,
    rules_dir,
    settle,
)
from tests.support import Captured, CapturingRelay

OGAWA = "ogawa@kaisha.example"  # head of the plant, not of QA: may register QA's approver
FILE_RELATION = ('[[relations]]\napprover = "fujii"\nunit = "qa"\nkind = "responsible"\n'
                 'valid_from = 2026-01-01\nregistered_by = "sysadm"\n')


@contextmanager
def qa_without_approver(tmp_path: Path, db_url: str,
                        relay: CapturingRelay) -> Iterator[World]:
    """The kaisha organisation whose file names no responsible approver for QA."""
    assert FILE_RELATION in ORG
    org = tmp_path / "kaisha.toml"
    org.write_text(ORG.replace(FILE_RELATION, ""))
    w = start_world(tmp_path, db_url, relay, rules=rules_dir(tmp_path),
                    directory={"file": str(org)}, workflow={"admin": "sysadm"})
    try:
        yield w
    finally:
        w.app.stop()


def register(w: World, body: str) -> int:
    """Ogawa registers by mail; the relation's id."""
    w.send(OGAWA, "relation register", body)
    w.one(OGAWA)
    with w.app.store.transaction() as s:
        found = s.scalar(select(ApprovalRelation.id).where(
            ApprovalRelation.source == "registered").order_by(ApprovalRelation.id.desc()))
    assert found is not None
    return found


def at_responsible(w: World) -> tuple[str, Captured]:
    w.send(YOSHIDA, "ゲージ購入", PURCHASE)
    number = number_of(w.one(YOSHIDA))
    decide(w, w.one(LEE), LEE, "APPROVE")
    decide(w, w.one(ABE), ABE, "承認")
    return number, w.one(FUJII)


def pending(w: World, number: str) -> list[str]:
    return [st.approver_id for st in case_steps(w, number) if st.state == "pending"]


def test_an_ask_follows_its_relation_to_the_new_approver(tmp_path: Path, db_url: str,
                                                         relay: CapturingRelay) -> None:
    with qa_without_approver(tmp_path, db_url, relay) as w:
        rid = register(w, "Approver: fujii\nUnit: qa\nKind: responsible\n"
                          "Valid from: 2026-11-02\n")
        number, ask = at_responsible(w)
        assert pending(w, number) == ["fujii"]
        # Ogawa hands QA to Hayashi: the waiting ask moves at the next timer pass.
        w.send(OGAWA, f"relation update {rid}", "Approver: hayashi\n")
        w.one(OGAWA)
        w.app.timers.run_once()
        settle(w)
        assert pending(w, number) == ["hayashi"]
        assert len(fresh(w, FUJII)) == 1  # told the case is no longer theirs
        new = fresh(w, HAYASHI)
        assert len(new) == 1 and number in new[0].subject
        w.reply(ask, FUJII, "承認")  # the old ask is dead
        settle(w)
        assert pending(w, number) == ["hayashi"]
        w.app.timers.run_once()  # nothing changed since: nobody hears anything
        settle(w)
        assert fresh(w, HAYASHI) == [] and len(fresh(w, FUJII)) == 1  # (the refusal)


def test_a_relation_that_ends_holds_the_case_until_one_begins(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    with qa_without_approver(tmp_path, db_url, relay) as w:
        rid = register(w, "Approver: fujii\nUnit: qa\nKind: responsible\n"
                          "Valid from: 2026-11-02\n")
        number, _ = at_responsible(w)
        # The relation ends today, as `ringi relation end` run by the administrator would.
        registry = registry_for(w.app.cfg, w.clock, w.app.audit)
        with w.app.store.transaction() as s:
            row = s.get(ApprovalRelation, rid)
            assert row is not None
            out = registry.change(s, "sysadm", "end", replace(
                relation_record(row), valid_to=datetime(2026, 11, 2).date()), rid, "command",
                accept_gap=True)
        assert out.state == "stored"
        w.app.timers.run_once()
        settle(w)
        assert pending(w, number) == ["fujii"]  # it holds through its last day
        w.clock.set(datetime(2026, 11, 3, 9, 0, tzinfo=UTC))
        w.app.timers.run_once()
        settle(w)
        assert w.case(number).state == "held" and pending(w, number) == []
        assert len(fresh(w, FUJII)) == 1  # no longer asked
        # Hayashi is registered from the 4th: nothing moves on the 3rd, the case resumes
        # on the 4th.
        register(w, "Approver: hayashi\nUnit: qa\nKind: responsible\n"
                    "Valid from: 2026-11-04\n")
        w.app.timers.run_once()
        settle(w)
        assert w.case(number).state == "held" and fresh(w, HAYASHI) == []
        w.clock.set(datetime(2026, 11, 4, 9, 0, tzinfo=UTC))
        w.app.timers.run_once()
        settle(w)
        assert pending(w, number) == ["hayashi"]
        assert [number in m.subject for m in fresh(w, HAYASHI)] == [True]
