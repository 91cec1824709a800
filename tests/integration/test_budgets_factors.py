"""Period budgets and factors on every backend: no overspending, period turns, audit entries."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from daemon.audit.trail import AuditTrail
from daemon.clock import FrozenClock
from daemon.conditions.budgets import BudgetError, Budgets, BudgetSpec
from daemon.conditions.factors import FactorError, Factors
from daemon.store.condition_models import AuditEntry, Budget, Factor
from daemon.store.db import Store
from tests.support import free_port, make_config, ringi, write_config

SET = "watanabe-sales-purchases"
MONTHLY = BudgetSpec("monthly", Decimal("1000000.00"), "month", "amount")
D = Decimal


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    st = Store(db_url)
    st.migrate()
    yield st
    st.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC))


def services(clock: FrozenClock) -> tuple[AuditTrail, Budgets, Factors]:
    trail = AuditTrail(clock)
    return trail, Budgets(clock, trail), Factors(clock, trail)


def entries(store: Store, kind: str | None = None) -> list[AuditEntry]:
    with store.transaction() as s:
        stmt = select(AuditEntry).order_by(AuditEntry.seq)
        if kind is not None:
            stmt = stmt.where(AuditEntry.kind == kind)
        return list(s.scalars(stmt))


def intact(store: Store) -> bool:
    with store.transaction() as s:
        return AuditTrail(FrozenClock()).verify(s) == []


def consume(store: Store, budgets: Budgets, amount: str, spec: BudgetSpec = MONTHLY,
            case: str = "R-2026-000001") -> bool:
    with store.transaction() as s:
        return budgets.consume(s, SET, spec, D(amount), case, "watanabe")


def remaining(store: Store, budgets: Budgets, spec: BudgetSpec = MONTHLY) -> Decimal:
    with store.transaction() as s:
        return budgets.remaining(s, SET, spec)


def test_consume_until_the_limit_and_no_further(store: Store, clock: FrozenClock) -> None:
    _, budgets, _ = services(clock)
    assert remaining(store, budgets) == D("1000000.00")
    with store.transaction() as s:  # reading never writes
        assert s.scalar(select(func.count()).select_from(Budget)) == 0
    assert consume(store, budgets, "600000")
    assert remaining(store, budgets) == D("400000.00")
    assert not consume(store, budgets, "400000.01")
    assert remaining(store, budgets) == D("400000.00")
    assert consume(store, budgets, "400000")
    assert remaining(store, budgets) == D("0.00")
    assert not consume(store, budgets, "0.01")
    kinds = [e.kind for e in entries(store)]
    assert kinds == ["budget reset", "budget consumed", "budget consumed"]  # refusals: nothing
    last = entries(store, "budget consumed")[-1]
    assert last.subject == f"budget {SET}/monthly"
    assert last.data == {"set": SET, "budget": "monthly", "period": "2026-11",
                         "case": "R-2026-000001", "amount": "400000.00",
                         "limit": "1000000.00", "consumed": "1000000.00", "remaining": "0.00"}
    assert intact(store)


def test_cents_add_up_exactly(store: Store, clock: FrozenClock) -> None:
    """SQLite keeps NUMERIC as floats, where 0.1 + 0.2 > 0.3; the budget must still fill."""
    _, budgets, _ = services(clock)
    spec = BudgetSpec("petty", D("0.30"), "month", "amount")
    assert consume(store, budgets, "0.10", spec)
    assert consume(store, budgets, "0.20", spec)
    assert remaining(store, budgets, spec) == D("0.00")
    assert not consume(store, budgets, "0.01", spec)


def test_bad_amounts_are_refused(store: Store, clock: FrozenClock) -> None:
    _, budgets, _ = services(clock)
    for bad in ("-1", "0.001"):
        with pytest.raises(BudgetError):
            consume(store, budgets, bad)
    assert entries(store) == []


def test_concurrent_approvals_cannot_overspend(db_url: str, store: Store,
                                               clock: FrozenClock) -> None:
    """20 approvals of 100,000 at once against 1,000,000, each on its own engine."""
    n = 20
    barrier = threading.Barrier(n)
    results: list[bool] = []
    errors: list[BaseException] = []

    def approve(i: int) -> None:
        own = Store(db_url)
        _, budgets, _ = services(clock)
        try:
            barrier.wait()
            with own.transaction() as s:
                won = budgets.consume(s, SET, MONTHLY, D("100000"), f"R-2026-{i:06d}", None)
            results.append(won)
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=approve, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == [False] * 10 + [True] * 10
    with store.transaction() as s:
        rows = s.execute(select(Budget.period, Budget.consumed)).all()
    assert [(r.period, r.consumed) for r in rows] == [("2026-11", D("1000000.00"))]
    consumed = entries(store, "budget consumed")
    assert len(consumed) == 10
    assert sorted(D(e.data["consumed"]) for e in consumed) == [
        D(100000 * k).quantize(D("0.01")) for k in range(1, 11)]
    assert len(entries(store, "budget reset")) == 1  # the row was opened once
    assert intact(store)


def test_approvals_consuming_several_budgets_never_deadlock(db_url: str, store: Store,
                                                            clock: FrozenClock) -> None:
    """Two budgets consumed in one transaction, in opposite orders by different approvals.

    Row locks taken in opposite orders deadlock on PostgreSQL unless every writer queues on
    the audit head first.
    """
    yearly = BudgetSpec("yearly", D("1000000"), "year", "amount")
    with store.transaction() as s:
        services(clock)[1].roll(s, {SET: [MONTHLY, yearly]})
    n = 12
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def approve(i: int) -> None:
        own = Store(db_url)
        _, budgets, _ = services(clock)
        try:
            barrier.wait()
            for _ in range(3):
                with own.transaction() as s:
                    for spec in ([MONTHLY, yearly] if i % 2 else [yearly, MONTHLY]):
                        assert budgets.consume(s, SET, spec, D("1000"), f"R-{i}", None)
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=approve, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert remaining(store, services(clock)[1]) == D("964000.00")
    assert len(entries(store, "budget consumed")) == 2 * 3 * n
    assert intact(store)


def test_next_month_starts_full_and_roll_records_the_reset(store: Store,
                                                           clock: FrozenClock) -> None:
    _, budgets, _ = services(clock)
    yearly = BudgetSpec("yearly", D("5000000"), "year", "amount")
    total = BudgetSpec("project", D("9000000"), "total", "amount")
    specs = {SET: [MONTHLY, yearly, total]}
    with store.transaction() as s:
        assert budgets.roll(s, specs) == 3
    with store.transaction() as s:
        assert budgets.roll(s, specs) == 0  # nothing due: nothing written
    assert [e.kind for e in entries(store)] == ["budget reset", "budget reset", "budget opened"]
    assert consume(store, budgets, "400000")
    assert consume(store, budgets, "400000", yearly)

    clock.set(dt.datetime(2026, 12, 1, 0, 0, tzinfo=dt.UTC))
    assert remaining(store, budgets) == D("1000000.00")
    assert remaining(store, budgets, yearly) == D("4600000.00")  # same year
    before = len(entries(store))
    with store.transaction() as s:
        assert budgets.roll(s, specs) == 1
    new = entries(store)[before:]
    assert [(e.kind, e.subject) for e in new] == [("budget reset", f"budget {SET}/monthly")]
    assert new[0].data == {"set": SET, "budget": "monthly", "period": "2026-12",
                           "limit": "1000000.00", "previous_period": "2026-11",
                           "previous_consumed": "400000.00"}
    with store.transaction() as s:
        shown = [(b.budget, b.period, b.consumed) for b in budgets.show(s)]
        history = [(b.budget, b.period) for b in budgets.show(s, all_periods=True)]
    assert shown == [("monthly", "2026-12", D("0.00")), ("project", "total", D("0.00")),
                     ("yearly", "2026", D("400000.00"))]
    assert ("monthly", "2026-11") in history

    clock.set(dt.datetime(2027, 1, 1, 0, 0, tzinfo=dt.UTC))
    with store.transaction() as s:
        assert budgets.roll(s, specs) == 2
    assert remaining(store, budgets, yearly) == D("5000000.00")
    assert intact(store)


def test_months_turn_at_midnight_in_the_company_time_zone(store: Store,
                                                          clock: FrozenClock) -> None:
    """Tokyo: December begins at 15:00 UTC on 30 November, not nine hours later."""
    budgets = Budgets(clock, AuditTrail(clock), ZoneInfo("Asia/Tokyo"))
    clock.set(dt.datetime(2026, 11, 30, 14, 59, tzinfo=dt.UTC))
    assert consume(store, budgets, "700000")
    assert remaining(store, budgets) == D("300000.00")
    clock.set(dt.datetime(2026, 11, 30, 15, 0, tzinfo=dt.UTC))
    assert remaining(store, budgets) == D("1000000.00")
    assert consume(store, budgets, "900000")
    with store.transaction() as s:
        assert [(b.period, b.consumed) for b in budgets.show(s)] == [("2026-12",
                                                                     D("900000.00"))]


def test_a_changed_limit_applies_at_once(store: Store, clock: FrozenClock) -> None:
    _, budgets, _ = services(clock)
    assert consume(store, budgets, "900000")
    raised = BudgetSpec("monthly", D("1500000"), "month", "amount")
    assert remaining(store, budgets, raised) == D("600000.00")
    with store.transaction() as s:
        assert budgets.roll(s, {SET: [raised]}) == 0
    changed = entries(store, "budget limit changed")
    assert [(e.data["old"], e.data["new"]) for e in changed] == [("1000000.00", "1500000.00")]
    assert consume(store, budgets, "600000", raised)
    assert not consume(store, budgets, "0.01", raised)


def test_charge_over_the_limit_and_release(store: Store, clock: FrozenClock) -> None:
    _, budgets, _ = services(clock)
    spec = BudgetSpec("monthly", D("100"), "month", "amount")
    assert consume(store, budgets, "80", spec)
    assert not consume(store, budgets, "30", spec)
    with store.transaction() as s:
        assert budgets.charge(s, SET, spec, D("30"), "R-2026-000002", "suzuki") == D("-10.00")
    over = entries(store, "budget charged over limit")
    assert len(over) == 1 and over[0].actor == "suzuki" and over[0].data["over_by"] == "10.00"
    with store.transaction() as s:
        assert budgets.release(s, SET, spec, D("30"), "R-2026-000002", "admin") == D("30.00")
    assert remaining(store, budgets, spec) == D("20.00")
    released = entries(store, "budget released")
    assert [(e.data["amount"], e.data["consumed"]) for e in released] == [("30.00", "80.00")]

    clock.set(dt.datetime(2026, 12, 3, tzinfo=dt.UTC))  # cancelled next month: back to November
    with store.transaction() as s:
        assert budgets.release(s, SET, spec, D("500"), "R-2026-000001", "admin",
                               when=dt.datetime(2026, 11, 20, tzinfo=dt.UTC)) == D("80.00")
        assert budgets.release(s, SET, spec, D("5"), "R-2026-000001", "admin") == D("0.00")
    with store.transaction() as s:
        rows = {p: c for p, c in s.execute(select(Budget.period, Budget.consumed))}
    assert rows == {"2026-11": D("0.00")}  # December untouched (no row: nothing to give back)
    assert remaining(store, budgets, spec) == D("100.00")
    assert intact(store)


def test_factor_set_replace_unset_are_audited(store: Store, clock: FrozenClock) -> None:
    _, _, factors = services(clock)
    with store.transaction() as s:
        assert factors.set(s, "interest_rate", "0.35", "sato", "cli") == 0.35
        factors.set(s, "fiscal_end", "2027-03-31", None, "cli")
    clock.advance(dt.timedelta(hours=1))
    with store.transaction() as s:
        factors.set(s, "interest_rate", "0.5", "sato", "email")
    with store.transaction() as s:
        assert factors.all(s) == {"fiscal_end": dt.date(2027, 3, 31), "interest_rate": 0.5}
        row = s.get(Factor, "interest_rate")
        assert row is not None and row.updated_at == clock.now() and row.updated_by == "sato"
    with store.transaction() as s:
        assert factors.unset(s, "interest_rate", "sato", "cli") is True
        assert factors.unset(s, "interest_rate", "sato", "cli") is False
    with store.transaction() as s:
        assert factors.all(s) == {"fiscal_end": dt.date(2027, 3, 31)}
    log = [(e.kind, e.subject, e.actor, e.data) for e in entries(store)]
    assert log == [
        ("factor set", "factor interest_rate", "sato",
         {"name": "interest_rate", "text": "0.35", "old": None, "new": 0.35, "source": "cli"}),
        ("factor set", "factor fiscal_end", None,
         {"name": "fiscal_end", "text": "2027-03-31", "old": None,
          "new": {"date": "2027-03-31"}, "source": "cli"}),
        ("factor set", "factor interest_rate", "sato",
         {"name": "interest_rate", "text": "0.5", "old": 0.35, "new": 0.5, "source": "email"}),
        ("factor unset", "factor interest_rate", "sato",
         {"name": "interest_rate", "old": 0.5, "new": None, "source": "cli"}),
    ]
    with pytest.raises(FactorError), store.transaction() as s:
        factors.set(s, "Interest-Rate", "1", None, "cli")
    assert len(entries(store)) == 4 and intact(store)


def run(cfg: str, *args: str) -> Any:
    return ringi(Path(cfg), *args)


def test_factor_and_budget_cli(tmp_path: Path, db_url: str, store: Store,
                               clock: FrozenClock) -> None:
    cfg = str(write_config(make_config(tmp_path, db_url, None, free_port()), tmp_path))
    assert run(cfg, "factor", "list").output == "no factors set\n"
    out = run(cfg, "factor", "set", "interest_rate", "0.35", "--by", "sato")
    assert out.exit_code == 0 and out.output == "factor.interest_rate = 0.35\n"
    out = run(cfg, "factor", "set", "fiscal_end", "2027-03-31")
    assert out.output == "factor.fiscal_end = 2027-03-31 (date)\n"
    out = run(cfg, "factor", "set", "floor", "--", "-2")
    assert out.exit_code == 0 and out.output == "factor.floor = -2\n"
    listed = run(cfg, "factor", "list").output.splitlines()
    assert [line.split()[:2] for line in listed] == [
        ["fiscal_end", "2027-03-31"], ["floor", "-2"], ["interest_rate", "0.35"]]
    assert listed[2].endswith("by sato")
    bad = run(cfg, "factor", "set", "Rate", "1")
    assert bad.exit_code == 1 and "factor name 'Rate' is not allowed" in bad.output
    assert run(cfg, "factor", "unset", "floor").output == "factor.floor removed\n"
    gone = run(cfg, "factor", "unset", "floor")
    assert gone.exit_code == 1 and "no factor floor" in gone.output
    shown = run(cfg, "audit", "show", "--subject", "factor floor").output.splitlines()
    assert [line.split()[3:5] for line in shown] == [["factor", "set"], ["factor", "unset"]]

    assert run(cfg, "budget", "show").output == "no budgets yet\n"
    now = dt.datetime.now(dt.UTC)  # the CLI runs on the system clock
    _, budgets, _ = services(FrozenClock(now))
    with store.transaction() as s:
        assert budgets.consume(s, SET, MONTHLY, D("1900000") / 2, "R-2026-000001", None)
    table = run(cfg, "budget", "show")
    assert table.exit_code == 0, table.output
    header, row = table.output.splitlines()
    assert header.split() == ["set", "budget", "period", "limit", "consumed", "remaining"]
    assert row.split() == [SET, "monthly", f"{now:%Y-%m}", "1,000,000.00", "950,000.00",
                           "50,000.00"]
    verified = run(cfg, "audit", "verify")
    assert verified.exit_code == 0 and verified.output.startswith("ok: 6 entries, chain intact")
