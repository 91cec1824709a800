"""Condition sets in the database: versions from files and from setters' mail (SPEC 6)."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from daemon.store.condition_models import ConditionSetVersion
from tests.integration.test_conditions import purchase
from tests.integration.test_outcomes import (
    BROWN,
    SMITH,
    TAKAHASHI,
    WATANABE,
    World,
    number_of,
    start_world,
)
from tests.support import ROOT, Captured, CapturingRelay

BROWN_SET = '''name = "brown-sales-purchases"
subjects = { case_types = ["purchase"], units = ["sales"] }

[[conditions]]
name = "budget"
expr = "case.amount <= 300000"
required = "at most ¥300,000"
'''


def confirm(w: World, who: str, as_who: str | None = None) -> Captured:
    """Answer the confirmation mail ringi sent to `who`; returns ringi's answer."""
    ask = w.one(who)
    assert ask.subject.startswith("conditions confirm "), ask.subject
    w.send(as_who or who, f"Re: {ask.subject}", "")
    return w.one(as_who or who)


def versions(w: World, name: str) -> list[tuple[int, str, bool]]:
    with w.app.store.transaction() as s:
        return [(r.version, r.origin, r.active) for r in s.scalars(
            select(ConditionSetVersion).where(ConditionSetVersion.name == name)
            .order_by(ConditionSetVersion.version))]


def test_files_become_versions_and_mail_edits_survive_restarts(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    cfg = {"rules": str(rules)}
    name = "watanabe-sales-purchases"
    w = start_world(tmp_path, db_url, relay, rules=rules, paths=cfg)
    assert versions(w, name) == [(1, "file", True)]
    w.app.stop()
    w = start_world(tmp_path, db_url, relay, rules=rules, paths=cfg)
    assert versions(w, name) == [(1, "file", True)]  # unchanged file: no new version
    w.send(WATANABE, "conditions replace", (rules / "conditions" / "watanabe-purchase.toml")
           .read_text().replace("<= 500000", "<= 400000"))
    assert "version 2" in confirm(w, WATANABE).body
    w.app.stop()
    w = start_world(tmp_path, db_url, relay, rules=rules, paths=cfg)
    # The file did not change, so the setter's mail version stays in force.
    assert versions(w, name) == [(1, "file", False), (2, "email", True)]
    with w.app.store.transaction() as s:
        book = w.app.workflow.library.book(s)
        cs = book.named(name)
        assert cs is not None and "400000" in cs.conditions[0].expr.source
    w.app.stop()
    path = rules / "conditions" / "watanabe-purchase.toml"
    path.write_text(path.read_text().replace("<= 500000", "<= 450000"))
    w = start_world(tmp_path, db_url, relay, rules=rules, paths=cfg)
    assert versions(w, name)[-1] == (3, "file", True)
    w.app.stop()
    path.unlink()
    w = start_world(tmp_path, db_url, relay, rules=rules, paths=cfg)
    assert [a for _, _, a in versions(w, name)] == [False, False, False]
    w.app.stop()


def test_setters_edit_their_own_sets_by_mail(tmp_path: Path, db_url: str,
                                             relay: CapturingRelay) -> None:
    w = start_world(tmp_path, db_url, relay)
    try:
        w.send(BROWN, "conditions new", BROWN_SET + "\n-- \nEmily Brown\nSales\n")
        ask = w.one(BROWN)
        assert "NOT in force yet" in ask.body
        # Someone else cannot use Brown's code, even with the right subject.
        w.send(TAKAHASHI, f"Re: {ask.subject}", "")
        assert "no change waits for that code" in w.one(TAKAHASHI).body
        w.send(BROWN, f"Re: {ask.subject}", "")
        assert "Stored: brown-sales-purchases version 1" in w.one(BROWN).body
        w.send(BROWN, f"Re: {ask.subject}", "")  # single use
        assert "no change waits for that code" in w.one(BROWN).body
        w.send(BROWN, "conditions new", BROWN_SET)
        assert "use \"conditions replace\"" in w.one(BROWN).body
        w.send(TAKAHASHI, "conditions replace", BROWN_SET)  # not his set
        assert "no condition set 'brown-sales-purchases'" in w.one(TAKAHASHI).body
        w.send(TAKAHASHI, "conditions new", 'setter = "brown"\n' + BROWN_SET)
        assert "for yourself only" in w.one(TAKAHASHI).body
        w.send(BROWN, "conditions replace", "name = [unclosed")
        assert "not valid TOML" in w.one(BROWN).body
        w.send(BROWN, "conditions replace", BROWN_SET.replace("<= 300000", "<== 3"))
        bad = w.one(BROWN)
        assert "nothing was stored" in bad.body and "does not compile" in bad.body
        w.send(BROWN, "conditions list", "")
        assert "brown-sales-purchases v1 from email" in w.one(BROWN).body
        # The set stored by mail decides Brown's step from now on.
        w.send(SMITH, "Purchase", purchase("200,000"))
        number = number_of(w.one(SMITH))
        w.reply(w.one(TAKAHASHI), TAKAHASHI, "承認")
        w.new(TAKAHASHI)
        w.new(SMITH)
        w.nothing_more(BROWN)
        assert any(k == "decision" and "Emily Brown's stored conditions" in d
                   for k, d in w.events(number))
        w.send(BROWN, "conditions retire brown-sales-purchases", "")
        assert "retired" in confirm(w, BROWN).body
        w.send(BROWN, "conditions list", "")
        assert "(none)" in w.one(BROWN).body
    finally:
        w.app.stop()


def test_an_unconfirmed_change_lapses(tmp_path: Path, db_url: str,
                                      relay: CapturingRelay) -> None:
    w = start_world(tmp_path, db_url, relay)
    try:
        w.send(BROWN, "conditions new", BROWN_SET)
        ask = w.one(BROWN)
        w.clock.advance(timedelta(hours=25))
        w.send(BROWN, f"Re: {ask.subject}", "")
        assert "no change waits for that code" in w.one(BROWN).body
        assert versions(w, "brown-sales-purchases") == []
    finally:
        w.app.stop()
