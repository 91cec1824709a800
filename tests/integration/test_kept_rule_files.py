"""A broken case type file or destinations file at start: its last good version (stored in
the database at an earlier start) stays in force, intake goes on, the administrator is told
once, and `ringi rules check` exits 1 naming the file and what is in force instead."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import select

from daemon.config import Config
from daemon.store.rulefile_models import RuleFileVersion
from tests.integration.orgworld import running_world
from tests.integration.test_conditions import purchase, through_line
from tests.integration.test_execution import (
    ACME,
    MONDAY_10_JST,
    procurement_approves,
)
from tests.integration.test_outcomes import (
    ADMIN,
    SATO,
    SMITH,
    TANAKA,
    World,
    number_of,
    start_world,
    travel,
)
from tests.support import ROOT, CapturingRelay, ringi, write_config


def rules_copy(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    return rules


def check(tmp_path: Path, cfg: Config) -> Result:
    return ringi(write_config(cfg, tmp_path), "rules", "check")


def check_fails(tmp_path: Path, cfg: Config, *expected: str) -> None:
    """`ringi rules check` exits 1 and its output says each of `expected`."""
    out = check(tmp_path, cfg)
    assert out.exit_code == 1
    for text in expected:
        assert text in out.output, (text, out.output)


def refused(relay: CapturingRelay, path: Path) -> list[str]:
    return [m.subject for m in relay.to(ADMIN) if f"rule file refused: {path}" in m.subject]


def restart(w: World, tmp_path: Path, db_url: str, relay: CapturingRelay, rules: Path) -> World:
    """A new start on the same database; mails already seen stay seen."""
    w.app.stop()
    new = start_world(tmp_path, db_url, relay, rules=rules)
    new.seen = dict(w.seen)
    return new


BREAKS = {
    "toml": lambda text: text + "\n[[fields]\n",
    "semantic": lambda text: text.replace('kind = "money"', 'kind = "cash"', 1),
}


@pytest.mark.parametrize("how", sorted(BREAKS))
def test_a_broken_case_type_file_keeps_its_last_good_version(
        tmp_path: Path, db_url: str, relay: CapturingRelay, how: str) -> None:
    rules = rules_copy(tmp_path)
    path = rules / "casetypes" / "travel.toml"
    good = path.read_text()
    w = start_world(tmp_path, db_url, relay, rules=rules)  # stores the good version
    path.write_text(BREAKS[how](good))
    w = restart(w, tmp_path, db_url, relay, rules)
    try:
        (b,) = w.app.broken_rules
        assert (b.kind, b.path) == ("case type", str(path))
        assert b.in_force == ("its last good version stays in force: case type travel, as "
                              "loaded 2026-11-02 09:00")
        w.send(TANAKA, "大阪出張", travel("30,000", "2"))
        number = number_of(w.one(TANAKA))
        assert w.case(number).case_type == "travel"
        assert "承認依頼" in w.one(SATO).subject
        (alert,) = w.new(ADMIN)
        assert alert.subject == f"[ringi] rule file refused: {path}"
        assert "In force instead: its last good version stays in force: case type travel" \
            in alert.body
        w.nothing_more(ADMIN)
        w = restart(w, tmp_path, db_url, relay, rules)  # same content: not mailed again
        w.nothing_more(ADMIN)
        assert len(refused(relay, path)) == 1
    finally:
        w.app.stop()
    check_fails(tmp_path, w.app.cfg, f"FAIL  {path}",
                f"{path}: in force instead: its last good version stays in force: case type "
                "travel, as loaded 2026-11-02 09:00", "travel           workflow travel")
    # Fixed (and changed): the new version is used and becomes the last good one.
    path.write_text(good.replace('title = "Travel expense"', 'title = "Business trip"'))
    w = restart(w, tmp_path, db_url, relay, rules)
    try:
        assert w.app.broken_rules == []
        travel_type = w.app.types.get("travel")
        assert travel_type is not None and travel_type.title == "Business trip"
        with w.app.store.transaction() as s:
            stored = s.scalars(select(RuleFileVersion.content).where(
                RuleFileVersion.path == str(path)).order_by(RuleFileVersion.id)).all()
        assert stored == [good, path.read_text()]
    finally:
        w.app.stop()
    assert check(tmp_path, w.app.cfg).exit_code == 0


def test_a_case_type_file_never_good_is_not_offered(tmp_path: Path, db_url: str,
                                                     relay: CapturingRelay) -> None:
    rules = rules_copy(tmp_path)
    leave = rules / "casetypes" / "leave.toml"
    leave.write_text('name = "leave"\ntitle = "Leave"\n[[fields]]\nname = "days"\n'
                     'label = "Days"\nkind = "days"\n')
    with running_world(tmp_path, db_url, relay, rules=rules) as w:
        (b,) = w.app.broken_rules
        assert b.in_force == ("no good version is stored: the case type it defines is not "
                              "offered (a request naming it is answered as an unknown type)")
        assert w.app.types.get("leave") is None
        w.send(SMITH, "Leave", "Type: leave\nDays: 2\n")
        answer = w.one(SMITH)
        assert '"leave" is not a request type ringi knows' in answer.body
        assert refused(relay, leave) == [f"[ringi] rule file refused: {leave}"]
    check_fails(tmp_path, w.app.cfg, f"FAIL  {leave}:6: field 'days': kind 'days' is not one of",
                f"{leave}: in force instead: no good version is stored: the case type it "
                "defines is not offered")


def test_a_broken_destinations_file_keeps_its_last_good_version(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    rules = rules_copy(tmp_path)
    path = rules / "destinations.toml"
    good = path.read_text()
    w = start_world(tmp_path, db_url, relay, rules=rules)
    path.write_text(good.replace('hours = "09:00-17:00"', 'hours = "9 to 5"', 1))
    w = restart(w, tmp_path, db_url, relay, rules)
    try:
        w.clock.set(MONDAY_10_JST)
        (b,) = w.app.broken_rules
        assert b.in_force == ("its last good version stays in force: destinations "
                              "acme-orders, purchasing-desk, as loaded 2026-11-02 09:00")
        # An automatic approval is still executed by the kept destinations.
        number = through_line(w, purchase("180,000"))
        procurement_approves(w)
        assert w.one(ACME).subject == f"Purchase order {number}: Laptop"
        (alert,) = w.new(ADMIN)
        assert alert.subject == f"[ringi] rule file refused: {path}"
    finally:
        w.app.stop()
    check_fails(tmp_path, w.app.cfg,
                f"FAIL  {path}: destination 'acme-orders': calendar: hours '9 to 5'",
                f"{path}: in force instead: its last good version stays in force: destinations "
                "acme-orders, purchasing-desk", "destination acme-orders: purchase when")
    path.write_text(good.replace("purchasing-desk@example.com", "desk@example.com"))
    w = restart(w, tmp_path, db_url, relay, rules)
    try:
        assert w.app.broken_rules == []
        desk = w.app.executions.destinations.by_name("purchasing-desk")
        assert desk is not None and desk.address == "desk@example.com"
    finally:
        w.app.stop()
