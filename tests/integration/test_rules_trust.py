"""Rules you can trust: `ringi rules check` finds what would silently misfire, and a broken
rule file at start never stops intake (its last good version stays in force)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import select

from daemon.app import App
from daemon.config import Config
from daemon.rulefiles import report_broken
from daemon.store.models import AdminAlert, OutboundMail
from tests.integration.test_outcomes import ADMIN, PURCHASE, SMITH, TAKAHASHI, start_world
from tests.support import ROOT, CapturingRelay, free_port, make_config, ringi, write_config


def rules_copy(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    return rules


def check(tmp_path: Path, cfg: Config) -> Result:
    cfg_file = write_config(cfg, tmp_path)
    return ringi(cfg_file, "rules", "check")


STRANGERS = """
name = "strangers"
setter = "nosuch"
proxy = "ghost"
also_required = ["watanabe", "phantom"]
subjects = { case_types = ["purchase"], people = ["smith", "nobody"], units = ["sales", "nounit"] }
[[conditions]]
name = "small"
expr = "case.amount <= 500"
"""


EXPECTED = ["setter 'nosuch' is not in the directory", "proxy 'ghost' is not in the directory",
            "co-approver (also_required) 'phantom' is not in the directory",
            "subject person 'nobody' is not in the directory",
            "subject unit 'nounit' is not in the directory"]


def test_people_and_units_missing_from_the_directory_in_the_database(tmp_path: Path,
                                                                     db_url: str) -> None:
    rules = rules_copy(tmp_path)
    (rules / "conditions" / "strangers.toml").write_text(STRANGERS)
    cfg = make_config(tmp_path, db_url, None, free_port(), paths={"rules": str(rules)})
    app = App(cfg)
    app.prepare()  # imports the directory into the database
    app.stop()
    out = check(tmp_path, cfg)
    assert out.exit_code == 1
    for problem in EXPECTED:
        assert f"FAIL  strangers: {problem} (the database)" in out.output, problem
    for known in ("'watanabe'", "'smith'", "'sales'"):
        assert known not in out.output
    assert "pass  watanabe-sales-purchases: inside every condition: approve" in out.output


KINDS = """
name = "{name}"
setter = "watanabe"
{subjects}
[[conditions]]
name = "amount"
expr = "case.amount <= 500"
[[conditions]]
name = "count"
expr = "{count}"
[[conditions]]
name = "day"
expr = "{day}"
[[examples]]
name = "text values"
fields = {fields}
expect = "approve"
[[examples]]
name = "text over the limit"
fields = {over}
expect = "reject"
failing = ["amount"]
"""


def kinds_sets(conditions: Path) -> None:
    """Two sets whose examples write every value as text: one naming several case types
    (with fields of the type not chosen by default: purchase sorts before travel), one
    naming none."""
    fields = '{ amount = "100", receipts = "2", departure_date = "2026-11-10" }'
    (conditions / "several.toml").write_text(KINDS.format(
        name="several", subjects='subjects = { case_types = ["travel", "purchase"] }',
        count="case.receipts < 5", day="case.departure_date <= date('2027-01-01')",
        fields=fields, over=fields.replace('"100"', '"1000"')))
    fields = ('{ amount = "100", quantity = "2", delivery_date = "2027-01-31", '
              'cost_centres = "CC-1" }')
    (conditions / "none.toml").write_text(KINDS.format(
        name="none", subjects="", count="case.quantity < 5 && 'CC-1' in case.cost_centres",
        day="case.delivery_date <= date('2027-03-31')", fields=fields,
        over=fields.replace('"100"', '"1000"')))


def test_rules_check_reads_examples_by_kind_and_names_what_the_directory_lacks(
        tmp_path: Path) -> None:
    """`amount = "100"` is money, `"2026-11-10"` a date, `"2"` an integer, `"CC-1"` a list,
    whatever case types the set names; people and units are checked against the directory
    file ringi imports when the database holds none yet."""
    rules = rules_copy(tmp_path)
    kinds_sets(rules / "conditions")
    (rules / "conditions" / "strangers.toml").write_text(STRANGERS)
    path = rules / "conditions" / "watanabe-purchase.toml"
    path.write_text(path.read_text().replace('expect = "approve"',
                                             'expect = "approve"\ncase_type = "travel"', 1))
    for wf, old, new in (("travel", 'unit = "accounting"', 'unit = "acounting"'),
                         ("purchase", 'people = ["yamamoto"]', 'people = ["yamamoto", "ghost"]')):
        text = (rules / "workflows" / f"{wf}.toml").read_text()
        assert old in text
        (rules / "workflows" / f"{wf}.toml").write_text(text.replace(old, new))
    cfg = make_config(tmp_path, f"sqlite:///{tmp_path / 'r.db'}", None, free_port(),
                      paths={"rules": str(rules)})
    out = check(tmp_path, cfg)
    assert out.exit_code == 1
    directory = ROOT / "samples" / "organisation.toml"
    assert f"FAIL  workflow travel ({rules / 'workflows' / 'travel.toml'}): phase accounting, " \
        f"step accounting: unit 'acounting' is not in the directory ({directory})" in out.output
    assert "FAIL  workflow purchase (" in out.output
    assert f"approver 'ghost' is not in the directory ({directory})" in out.output
    assert "'yamamoto'" not in out.output
    for name in ("several", "none"):
        assert f"pass  {name}: text values: approve" in out.output
        assert f"pass  {name}: text over the limit: reject (failing: amount)" in out.output
    for problem in EXPECTED:
        assert f"FAIL  strangers: {problem} ({ROOT / 'samples' / 'organisation.toml'})" \
            in out.output, problem
    assert "FAIL  watanabe-sales-purchases: example inside every condition: case type " \
        "'travel' is not one the set covers (purchase)" in out.output
    assert "8 check(s) failed" in out.output
    # An empty database and a directory file that cannot be read: said plainly, a failure.
    for extra in ("strangers.toml", "several.toml", "none.toml"):
        (rules / "conditions" / extra).unlink()
    path.write_text((ROOT / "rules" / "conditions" / "watanabe-purchase.toml").read_text())
    gone = tmp_path / "gone.toml"
    bare = make_config(tmp_path / "bare", f"sqlite:///{tmp_path / 'bare.db'}", None,
                       free_port(), paths={"rules": str(rules)}, directory={"file": str(gone)})
    out = check(tmp_path, bare)
    assert out.exit_code == 1
    assert f"FAIL  directory: {gone}: cannot read file" in out.output
    assert "1 check(s) failed" in out.output


def break_files(rules: Path) -> None:
    (rules / "conditions" / "watanabe-purchase.toml").write_text(
        'name = "watanabe-sales-purchases"\nsetter = "watanabe"\n[[conditions]]\n'
        'name = "budget"\nexpr = "case.amount <="\n')
    (rules / "workflows" / "purchase.toml").write_text("name = 'purchase'\n[[phases]\n")


def test_broken_files_at_start_keep_their_last_good_version(tmp_path: Path, db_url: str,
                                                            caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    rules = rules_copy(tmp_path)
    cfg = make_config(tmp_path, db_url, None, free_port(), paths={"rules": str(rules)})
    good = App(cfg)
    good.prepare()
    before, template = good.registry.current("purchase")
    good.stop()
    break_files(rules)
    with caplog.at_level(logging.ERROR, logger="daemon.rulefiles"):
        app = App(cfg)  # neither raises: intake goes on
        app.prepare()
    try:
        assert [r.getMessage().split(":")[0] for r in caplog.records
                if r.name == "daemon.rulefiles"] == [
            f"workflow template file {rules / 'workflows' / 'purchase.toml'} is invalid; "
            "its last good version stays in force",
            f"condition set file {rules / 'conditions' / 'watanabe-purchase.toml'} is "
            "invalid; its last good version stays in force"]
        assert app.registry.current("purchase") == (before, template)
        with app.store.transaction() as s:
            kept = app.workflow.library.book(s).named("watanabe-sales-purchases")
            assert kept is not None and kept.version == 1
            assert [c.name for c in kept.conditions] == ["budget", "category", "delivery",
                                                         "material"]
        # The next start reports the same files again: logged, but not mailed again.
        report_broken(app.store, app.alerts, app.broken_rules)
        with app.store.transaction() as s:
            alerts = s.scalars(select(AdminAlert).order_by(AdminAlert.key)).all()
            assert [(a.key.split(":")[0], a.suppressed) for a in alerts] == [
                ("rule-file", 1), ("rule-file", 1)]
            mails = s.scalars(select(OutboundMail.subject).where(
                OutboundMail.template == "admin_alert")).all()
            assert sorted(mails) == [
                f"[ringi] rule file refused: {rules / 'conditions' / 'watanabe-purchase.toml'}",
                f"[ringi] rule file refused: {rules / 'workflows' / 'purchase.toml'}"]
    finally:
        app.stop()
    out = check(tmp_path, cfg)
    assert out.exit_code == 1
    assert f"{rules / 'conditions' / 'watanabe-purchase.toml'}: in force instead: its last " \
        "good version stays in force: watanabe-sales-purchases v1 of" in out.output
    assert "in force instead: its last good version stays in force: workflow purchase v1" \
        in out.output
    assert "purchase         workflow purchase" in out.output


def test_a_workflow_file_broken_from_the_first_start_holds_its_cases_for_the_administrator(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    """No good version was ever stored: the case types it would govern are not routed by the
    default rank climbing (fewer approvers than the rules want); the administrator decides."""
    rules = rules_copy(tmp_path)
    wf = rules / "workflows" / "purchase.toml"
    wf.write_text(wf.read_text().replace('resolver = "', 'resolver = "no-such-', 1))
    w = start_world(tmp_path, db_url, relay, rules=rules)
    try:
        assert w.app.registry.current("travel")[1].name == "travel"
        w.send(SMITH, "Purchase", PURCHASE)
        mails = w.new(ADMIN, 2)
        subjects = sorted(m.subject for m in mails)
        assert any(f"rule file refused: {wf}" in s for s in subjects), subjects
        request = next(m for m in mails if "rule file" not in m.subject)
        assert "R-" in request.subject and f"no valid workflow in {wf}" in request.body
        w.one(SMITH)  # the acknowledgement
        w.nothing_more(TAKAHASHI)  # the line manager is not asked by rank climbing
    finally:
        w.app.stop()


def test_rules_check_without_a_reachable_database_says_so_and_checks_the_files(
        tmp_path: Path) -> None:
    dead = f"postgresql+psycopg://ringi@127.0.0.1:{free_port()}/ringi"  # nothing listens
    cfg = make_config(tmp_path, dead, None, free_port())
    out = check(tmp_path, cfg)
    assert out.exit_code == 1
    assert "FAIL  database: cannot be reached (" in out.output
    assert "sets stored by mail, the stored directory and the versions in force are not " \
        "checked" in out.output
    assert "pass  watanabe-sales-purchases: inside every condition: approve" in out.output
    assert "1 check(s) failed" in out.output
    assert "Traceback" not in out.output


def test_a_kept_version_that_no_longer_fits_the_case_type_is_not_in_force(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The case type lost a field the set reads: the file and its stored version are both
    unusable. ringi still starts, and nobody is approved by a set it cannot read."""
    rules = rules_copy(tmp_path)
    cfg = make_config(tmp_path, f"sqlite:///{tmp_path / 'r.db'}", None, free_port(),
                      paths={"rules": str(rules)})
    good = App(cfg)
    good.prepare()
    good.stop()
    types = rules / "casetypes" / "purchase.toml"
    text = types.read_text()
    start = text.index('[[fields]]\nname = "material_code"')
    types.write_text(text[:start] + text[text.index("[[fields]]", start + 1):])
    app = App(cfg)
    try:
        with caplog.at_level(logging.ERROR):
            app.prepare()
            with app.store.transaction() as s:
                assert app.workflow.library.book(s).named("watanabe-sales-purchases") is None
        (broken,) = app.broken_rules
        assert broken.in_force == ("its last good version (watanabe-sales-purchases v1) no "
                                   "longer fits today's case types either: its setter decides "
                                   "those cases in person")
        assert any("watanabe-sales-purchases v1" in r.getMessage() and "not in force" in
                   r.getMessage() for r in caplog.records if r.name == "daemon.conditions.library")
    finally:
        app.stop()
