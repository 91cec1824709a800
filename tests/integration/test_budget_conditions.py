"""Budgets and external values inside examination; every change audited (SPEC 6, 11)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.store.condition_models import AuditEntry
from tests.integration.test_conditions import purchase as purchase_text
from tests.integration.test_outcomes import (
    BROWN,
    SMITH,
    TAKAHASHI,
    WATANABE,
    World,
    number_of,
    start_world,
)
from tests.integration.test_recovery import up_to_watanabe, with_rules
from tests.support import CapturingRelay, wait_until

MONTHLY = '''[[budgets]]
name = "monthly"
limit = 400000
period = "month"
field = "amount"
'''


@pytest.fixture
def world(tmp_path: Path, db_url: str, relay: CapturingRelay) -> Iterator[World]:
    rules = with_rules(tmp_path, MONTHLY)
    w = start_world(tmp_path, db_url, relay, rules=rules, paths={"rules": str(rules)})
    yield w
    w.app.stop()


def audit(w: World) -> list[tuple[str, str]]:
    with w.app.store.transaction() as s:
        assert w.app.audit.verify(s) == []  # the chain is intact
        return [(e.kind, e.subject) for e in s.scalars(select(AuditEntry).order_by(
            AuditEntry.seq))]


def auto_approved(w: World, number: str) -> bool:
    return any(k == "decision" and "automatic" in d for k, d in w.events(number))


def test_monthly_budget_is_consumed_and_reset_by_the_clock(world: World) -> None:
    w = world
    first = up_to_watanabe(w, "180,000")
    second = up_to_watanabe(w, "180,000")
    assert auto_approved(w, first) and auto_approved(w, second)
    third = up_to_watanabe(w, "180,000")  # only ¥40,000 left this month
    assert w.case(third).state == "rejected"
    rejected = w.relay.wait_for(SMITH, w.seen[SMITH] + 1)[-1]
    assert "monthly budget: you gave amount=180,000.00" in rejected.body
    assert "remaining budget (40,000.00 of 400,000.00)" in rejected.body
    w.nothing_more(WATANABE)
    kinds = audit(w)
    assert kinds.count(("budget consumed", "budget watanabe-sales-purchases/monthly")) == 2
    assert ("condition set saved", "conditions/watanabe-sales-purchases") in kinds
    # December: the timer opens the new period (the reset, audited); the budget is whole.
    w.clock.set(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    assert w.app.timers.run_once() >= 1  # (reminders for procurement are due too)
    resets = audit(w).count(("budget reset", "budget watanabe-sales-purchases/monthly"))
    assert resets == 2  # November's, opened by the first consumption, and December's
    fourth = up_to_watanabe(w, "180,000")
    assert auto_approved(w, fourth)
    assert w.case(fourth).state == "in_review"  # on to procurement


def test_a_factor_set_by_command_is_read_by_conditions(tmp_path: Path, db_url: str,
                                                       relay: CapturingRelay) -> None:
    rules = with_rules(tmp_path)
    path = rules / "conditions" / "watanabe-purchase.toml"
    path.write_text(path.read_text().replace(
        'expr = "case.amount <= 500000"', 'expr = "case.amount <= factor.purchase_cap"'))
    w = start_world(tmp_path, db_url, relay, rules=rules, paths={"rules": str(rules)})
    try:
        # No factor yet: the condition cannot be judged either way, so Watanabe decides.
        unset = up_to_watanabe(w, "180,000")
        ask = w.one(WATANABE)
        assert "factor.purchase_cap is not set" in ask.body
        assert "自動では判断できませんでした" in ask.body  # Watanabe reads Japanese
        assert not auto_approved(w, unset) and w.case(unset).state == "in_review"
        assert any("cannot be judged: watanabe-sales-purchases/budget" in d
                   for _, d in w.events(unset))
        with w.app.store.transaction() as s:
            assert w.app.workflow.factors is not None
            w.app.workflow.factors.set(s, "purchase_cap", "100,000", "admin", "test")
        over = up_to_watanabe(w, "180,000")
        assert w.case(over).state == "rejected"
        under = up_to_watanabe(w, "90,000")
        assert auto_approved(w, under)
        assert ("factor set", "factor purchase_cap") in audit(w)
    finally:
        w.app.stop()


def test_concurrent_approvals_cannot_overspend(world: World, db_url: str) -> None:
    """Another daemon's approval holds the budget while this one examines: this one's
    examination still sees ¥400,000 left, but its consumption waits for the other's
    commit, then finds too little and the case is not approved (PostgreSQL: SQLite lets
    one writer at a time, so the race cannot happen there)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("concurrent writers need PostgreSQL")
    import sqlalchemy as sa

    from daemon.conditions.budgets import Budgets
    from daemon.store.db import Store

    w = world
    w.send(SMITH, "Purchase", purchase_text("300,000"))
    number = number_of(w.one(SMITH))
    w.reply(w.one(TAKAHASHI), TAKAHASHI, "承認")
    w.new(TAKAHASHI)
    w.new(SMITH)
    ask = w.one(BROWN)
    other = Store(w.app.cfg.database.url)
    book_set = w.app.workflow.conditions.sets[0]
    spec = book_set.budgets[0]
    with other.transaction() as s2:
        assert Budgets(w.clock, w.app.audit).consume(
            s2, book_set.name, spec, Decimal(300000), "R-OTHER", "watanabe")
        w.reply(ask, BROWN, "approve")  # this daemon now examines, then waits on the lock
        probe = sa.create_engine(db_url)
        with probe.connect() as c:
            wait_until(lambda: c.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"))
                .scalar() == 1)
        probe.dispose()
    other.engine.dispose()
    w.new(BROWN)
    assert "Rejected" in w.relay.wait_for(SMITH, w.seen[SMITH] + 1)[-1].subject
    assert w.case(number).state == "rejected"
    assert any("another approval used it meanwhile" in d for _, d in w.events(number))
    with w.app.store.transaction() as s:
        lines = w.app.workflow.budgets.show(s) if w.app.workflow.budgets else []
        assert [line.consumed for line in lines] == [Decimal("300000.00")]


def consumed(w: World) -> Decimal:
    with w.app.store.transaction() as s:
        assert w.app.workflow.budgets is not None
        return sum((line.consumed for line in w.app.workflow.budgets.show(s)), Decimal(0))


def test_budget_comes_back_when_the_case_is_rejected_or_cancelled(world: World) -> None:
    from tests.integration.test_conditions import CLARK

    w = world
    first = up_to_watanabe(w, "180,000")
    assert consumed(w) == Decimal("180000.00")
    w.reply(w.one(CLARK), CLARK, "reject\nNo budget code")  # procurement ends the case
    wait_until(lambda: w.case(first).state == "rejected", what="rejected")
    assert consumed(w) == Decimal(0)
    w.new(TAKAHASHI)  # earlier approvers are told of a business-phase rejection
    w.new(BROWN)
    second = up_to_watanabe(w, "180,000")
    assert consumed(w) == Decimal("180000.00")
    w.send(SMITH, f"cancel {second}", "")
    wait_until(lambda: w.case(second).state == "cancelled", what="cancelled")
    assert consumed(w) == Decimal(0)
    w.send(SMITH, f"cancel {first}", "")  # cancelling the rejected one gives nothing twice
    wait_until(lambda: w.case(first).state == "cancelled", what="cancelled")
    assert consumed(w) == Decimal(0)
    released = [d for k, d in w.events(first) if k == "budget released"]
    assert len(released) == 1 and "180,000.00" in released[0]
    assert ("budget released", "budget watanabe-sales-purchases/monthly") in audit(w)


def test_reapplying_gives_the_earlier_round_back(world: World) -> None:
    from tests.integration.test_conditions import CLARK

    w = world
    number = up_to_watanabe(w, "180,000")
    assert consumed(w) == Decimal("180000.00")
    w.reply(w.one(CLARK), CLARK, "return\nAttach the quotation")
    wait_until(lambda: w.case(number).state == "returned", what="returned")
    w.send(SMITH, f"reapply {number}", "")
    wait_until(lambda: w.case(number).round == 2, what="round 2")
    assert consumed(w) == Decimal(0)  # the new round takes its own when approved again


def test_a_case_set_cannot_take_another_setters_name(world: World) -> None:
    from tests.integration.test_outcomes import BROWN

    w = world
    number = up_to_watanabe(w, "180,000")  # Brown was asked on this case
    w.send(BROWN, f"conditions case {number}", 'name = "watanabe-sales-purchases"\n'
           'subjects = { case_types = ["purchase"] }\n[[conditions]]\nname = "x"\n'
           'expr = "case.amount > 0"\n')
    assert "belongs to another approver's set" in w.relay.wait_for(BROWN, w.seen.get(
        BROWN, 0) + 1)[-1].body
