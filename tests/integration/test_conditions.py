"""Stored approval conditions decide for their setter: scenarios over SMTP."""

from __future__ import annotations

import shutil
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.integration.test_outcomes import (
    BROWN,
    SMITH,
    TAKAHASHI,
    WATANABE,
    World,
    number_of,
    start_world,
)
from tests.support import REQUEST, ROOT, CapturingRelay, free_port, make_config, ringi, write_config

CLARK = "clark@example.com"


def purchase(amount: str, category: str = "equipment", extra: str = "") -> str:
    return (f"Type: purchase\nItem: Laptop\nSupplier: ACME\nQuantity: 1\nAmount: {amount}\n"
            f"Category: {category}\n{extra}")


def through_line(w: World, body: str, attach: bytes | None = None) -> str:
    """Smith's purchase, approved by Takahashi and Brown in person; returns the number."""
    if attach is None:
        w.send(SMITH, "Purchase", body)
    else:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = SMITH, REQUEST, "Purchase"
        msg.set_content(body)
        msg.add_attachment(attach, maintype="application", subtype="pdf",
                           filename="quotation.pdf")
        with smtplib.SMTP("127.0.0.1", w.port) as c:
            c.send_message(msg)
    number = number_of(w.one(SMITH))
    w.reply(w.one(TAKAHASHI), TAKAHASHI, "承認")  # no conditions stored: asked in person
    w.new(TAKAHASHI)
    w.new(SMITH)
    w.reply(w.one(BROWN), BROWN, "approve")
    w.new(BROWN)
    return number


@pytest.fixture
def world(tmp_path: Path, db_url: str, relay: CapturingRelay) -> Iterator[World]:
    w = start_world(tmp_path, db_url, relay)
    yield w
    w.app.stop()


def test_inside_every_condition_is_approved_without_mail(world: World) -> None:
    number = through_line(world, purchase("180,000"))
    progress = world.one(SMITH)
    assert "Olivia Clark" in progress.body  # straight past Watanabe to procurement
    world.one(CLARK)
    world.nothing_more(WATANABE)  # no human mail: his stored conditions decided
    auto = [d for k, d in world.events(number) if k == "decision" and "automatic" in d]
    assert len(auto) == 1 and "Yuki Watanabe's stored conditions" in auto[0]
    assert "held: watanabe-sales-purchases/budget" in auto[0]
    # The delivery date and material code are unset: they do not fail, and say so.
    assert "not judged (unset): watanabe-sales-purchases/delivery, " \
        "watanabe-sales-purchases/material" in auto[0]


def test_failing_condition_rejects_naming_the_item(world: World) -> None:
    number = through_line(world, purchase("600,000", extra="Material code: 9901\n"),
                          attach=b"%PDF quotation")
    rejected = world.one(SMITH)
    assert "Rejected" in rejected.subject and number in rejected.subject
    assert ("budget: you gave amount='600000'; required: at most ¥500,000\n"
            "    check against: quotation.pdf\n") in rejected.body
    assert "material: you gave material_code='9901'" in rejected.body
    assert "category" not in rejected.body.split("Check these")[0].split("did not meet them")[1]
    assert "quotation.pdf" in rejected.body  # points at the attached document
    world.nothing_more(WATANABE, CLARK)
    assert world.case(number).state == "rejected"


def test_contact_on_failure_asks_the_setter(tmp_path: Path, db_url: str,
                                            relay: CapturingRelay) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    cset = rules / "conditions" / "watanabe-purchase.toml"
    cset.write_text(cset.read_text().replace("contact_on_failure = false",
                                             "contact_on_failure = true"))
    cfg_rules = {"rules": str(rules)}
    w = start_world(tmp_path, db_url, relay, rules=rules, paths=cfg_rules)
    try:
        number = through_line(w, purchase("600,000"))
        ask = w.one(WATANABE)
        assert "承認依頼" in ask.subject and "条件の一部を満たしていない" in ask.body
        assert "budget（記入値 amount='600000'、条件 at most ¥500,000）" in ask.body
        w.reply(ask, WATANABE, "承認\n今回は特例で")  # the setter overrides in person
        w.new(WATANABE)
        w.new(SMITH)
        w.one(CLARK)
        assert w.case(number).state == "in_review"
    finally:
        w.app.stop()


def test_rules_check_reports_failing_examples(tmp_path: Path, db_url: str) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    cset = rules / "conditions" / "watanabe-purchase.toml"
    cset.write_text(cset.read_text().replace('failing = ["budget"]', 'failing = ["category"]'))
    (rules / "conditions" / "rates.toml").write_text(RATES)
    cfg = make_config(tmp_path, db_url, None, free_port(), paths={"rules": str(rules)})
    cfg_file = write_config(cfg, tmp_path)
    out = ringi(cfg_file, "rules", "check")
    assert out.exit_code == 1
    assert "FAIL  watanabe-sales-purchases: over budget: reject (failing: budget)" in out.output
    assert "pass  watanabe-sales-purchases: inside every condition: approve" in out.output
    # Examples state the factors, remaining budgets and day they assume.
    for line in ("pass  rates: low rate: approve", "pass  rates: high rate: reject (failing: rate)",
                 "pass  rates: no rate set: ask", "pass  rates: budget used up: reject "
                 "(failing: monthly budget)", "pass  rates: too late: reject (failing: deadline)",
                 "FAIL  rates: wrongly expected: approve"):
        assert line in out.output, line


def test_rules_check_runs_the_examples_of_sets_stored_by_mail(tmp_path: Path,
                                                               db_url: str) -> None:
    """A set a setter stored by mail is in the database, not in rules/: checked too."""
    import tomllib

    from daemon.app import App

    cfg = make_config(tmp_path, db_url, None, free_port())
    app = App(cfg)
    app.store.migrate()
    body = tomllib.loads(RATES.replace('name = "rates"', 'name = "ito-rates"'))
    with app.store.transaction() as s:
        app.workflow.library.save(s, body, origin="email", source="mail from ito",
                                  actor="ito")
    app.store.dispose()
    cfg_file = write_config(cfg, tmp_path)
    out = ringi(cfg_file, "rules", "check")
    assert out.exit_code == 1, out.output  # its wrongly expected example
    assert "pass  ito-rates (v1, email): high rate: reject (failing: rate)" in out.output
    assert "FAIL  ito-rates (v1, email): wrongly expected: approve" in out.output
    assert "pass  watanabe-sales-purchases: over budget: reject" in out.output


RATES = """
name = "rates"
setter = "ito"
subjects = { case_types = ["purchase"] }
[[conditions]]
name = "rate"
expr = "factor.interest_rate < 2.5"
required = "an interest rate under 2.5 %"
[[conditions]]
name = "deadline"
expr = "ctx.today <= date('2026-12-31')"
required = "decided in 2026"
[[budgets]]
name = "monthly"
limit = 1000000
period = "month"
field = "amount"
[[examples]]
name = "low rate"
fields = { amount = "300000" }
factors = { interest_rate = 1.5 }
today = "2026-12-01"
expect = "approve"
[[examples]]
name = "high rate"
fields = { amount = "300000" }
factors = { interest_rate = 3.0 }
today = "2026-12-01"
expect = "reject"
failing = ["rate"]
[[examples]]
name = "no rate set"
fields = { amount = "300000" }
today = "2026-12-01"
expect = "ask"
[[examples]]
name = "budget used up"
fields = { amount = "300000" }
factors = { interest_rate = 1.5 }
budgets = { monthly = 100000 }
today = "2026-12-01"
expect = "reject"
failing = ["monthly budget"]
[[examples]]
name = "too late"
fields = { amount = "300000" }
factors = { interest_rate = 1.5 }
today = "2027-01-04"
expect = "reject"
failing = ["deadline"]
[[examples]]
name = "wrongly expected"
fields = { amount = "300000" }
factors = { interest_rate = 1.5 }
today = "2026-12-01"
expect = "reject"
"""
