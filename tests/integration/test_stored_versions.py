"""A case's own workflow version that no longer builds (the case types changed under it) is
an explicit error: the cases on it are suspended with the reason in their history and the
administrator is told once, at start or when an input meets it, instead of every reply
raising the same exception until it is a dead letter."""

from __future__ import annotations

from pathlib import Path

import tomli_w
from click.testing import CliRunner
from sqlalchemy import select

from daemon.cli.main import cli
from daemon.config import config_as_dict
from daemon.routing.registry import StoredVersionError
from daemon.store.models import WorkItem
from daemon.workqueue.queue import State
from tests.integration.test_outcomes import (
    ADMIN,
    SATO,
    TANAKA,
    World,
    custom_rules,
    number_of,
    start_world,
    travel,
)
from tests.support import CapturingRelay, wait_until

REASON = ("workflow travel v1 no longer builds against today's case types: ")


def rename_amount(rules: Path) -> None:
    """The travel case type's `amount` becomes `total`; the current workflow follows, the
    stored version 1 (`when = "case.amount >= 50000"`) cannot."""
    casetype = rules / "casetypes" / "travel.toml"
    casetype.write_text(casetype.read_text().replace('name = "amount"', 'name = "total"'))
    workflow = rules / "workflows" / "travel.toml"
    workflow.write_text(workflow.read_text().replace("case.amount", "case.total"))


def dead_items(w: World) -> list[WorkItem]:
    with w.app.store.transaction() as s:
        return list(s.scalars(select(WorkItem).where(WorkItem.state == State.DEAD)))


def test_cases_on_a_version_that_no_longer_builds_are_suspended_at_start(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    rules = custom_rules(tmp_path, "extra.toml", "")
    (rules / "workflows" / "extra.toml").unlink()
    w = start_world(tmp_path, db_url, relay, rules=rules)
    w.send(TANAKA, "Old rules", travel("30,000"))
    old = number_of(w.one(TANAKA))
    to_sato = w.one(SATO)
    w.app.stop()
    rename_amount(rules)
    w = start_world(tmp_path, db_url, relay, rules=rules)  # version 2; case on version 1
    w.seen = {TANAKA: 1, SATO: 1}
    try:
        assert w.case(old).state == "suspended"
        [(_, detail)] = [e for e in w.events(old) if e[0] == "suspended"]
        assert detail.startswith(REASON) and "case.amount" in detail, detail
        alert = w.one(ADMIN)
        assert alert.subject.endswith("Workflow travel v1 no longer builds: 1 case(s) "
                                      "suspended")
        assert f"suspended: {old}" in alert.body and "ringi case resume NUMBER" in alert.body
        # The approver's answer to the old request is refused like any answer to a case
        # that is not waiting: answered once, nothing raised, nothing dead.
        w.reply(to_sato, SATO, "承認")
        w.new(SATO)
        w.nothing_more(ADMIN)
        assert w.case(old).state == "suspended" and dead_items(w) == []
        # Resuming before the case types are fixed is refused, and changes nothing.
        cfg_file = tmp_path / "ringi.toml"
        cfg_file.write_text(tomli_w.dumps(config_as_dict(w.app.cfg)))
        refused = CliRunner().invoke(cli, ["--config", str(cfg_file), "case", "resume", old])
        assert refused.exit_code == 1, refused.output
        assert f"ringi: {old} cannot resume: {REASON}" in refused.output
        assert w.case(old).state == "suspended"
        # New requests run on version 2 as usual.
        w.send(TANAKA, "New rules", travel("30,000"))
        assert w.case(number_of(w.new(TANAKA)[0])).state == "in_review"
    finally:
        w.app.stop()


def test_an_input_that_meets_such_a_version_suspends_its_cases_once(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    """Between two starts (a version row the start did not see): the input is a dead letter
    waiting for `ringi queue retry`, the cases on the version are suspended and the
    administrator is told once, in one mail that says what to do."""
    rules = custom_rules(tmp_path, "extra.toml", "")
    (rules / "workflows" / "extra.toml").unlink()
    w = start_world(tmp_path, db_url, relay, rules=rules)
    try:
        w.send(TANAKA, "Old rules", travel("30,000"))
        old = number_of(w.one(TANAKA))
        to_sato = w.one(SATO)
        registry = w.app.registry
        registry._by_version.clear()  # as if the running daemon had never built version 1
        registry.fields_of["travel"] = registry.fields_of["travel"] - {"amount"}
        with w.app.store.transaction() as s:
            case = w.case(old)
            try:
                registry.of_version(s, case.workflow_version_id, "travel")
                raise AssertionError("version 1 must not build without `amount`")
            except StoredVersionError as exc:
                assert str(exc).startswith(REASON)
        w.reply(to_sato, SATO, "承認")
        [dead] = wait_until(lambda: dead_items(w), what="the reply as a dead letter")
        assert w.case(old).state == "suspended"
        assert dead.queue == "inbound" and REASON in (dead.last_error or "")
        alert = w.one(ADMIN)  # told once: the suspension mail, no second dead-letter mail
        assert "no longer builds" in alert.subject
        w.nothing_more(ADMIN)
    finally:
        w.app.stop()
