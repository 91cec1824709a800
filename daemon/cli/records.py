"""`ringi audit`, `ringi factor` and `ringi budget`: the audit trail and what conditions read."""

from __future__ import annotations

import sys

import click

from daemon.audit.casechain import case_history_counts, verify_cases
from daemon.audit.trail import AuditTrail, format_entry
from daemon.cli.common import BoundedInt, cli_clock, cli_config, open_store
from daemon.cli.output import echo, inline
from daemon.conditions.budgets import Budgets
from daemon.conditions.factors import FactorError, Factors, describe


@click.group()
def audit() -> None:
    """The hash-chained audit trail."""


@audit.command("verify")
@click.pass_context
def audit_verify(ctx: click.Context) -> None:
    """Recompute the chain; exit 1 and name each problem if anything was altered or removed."""
    store = open_store(ctx)
    trail = AuditTrail(cli_clock(ctx, cli_config(ctx)))
    with store.transaction() as s:
        problems = trail.verify(s) + verify_cases(s)
        seq, digest = trail.head(s)
        cases, events = case_history_counts(s)
    store.dispose()
    if problems:
        for line in problems:
            echo(line)
        echo(f"ringi: {len(problems)} problem(s) in the audit trail or case histories",
                   err=True)
        sys.exit(1)
    echo(f"ok: {seq} entries, chain intact")
    echo(f"head: seq {seq} sha256 {digest}")
    echo(f"case histories: {events} event(s) of {cases} case(s) intact")


@audit.command("show")
@click.option("--subject", default=None, help="Only entries about this subject, "
              "e.g. 'factor interest_rate' or 'budget SET/NAME'.")
@click.option("--limit", default=50, show_default=True, type=BoundedInt(),
              help="How many of the newest entries.")
@click.pass_context
def audit_show(ctx: click.Context, subject: str | None, limit: int) -> None:
    """Print the newest entries, oldest first, one a line."""
    store = open_store(ctx)
    with store.transaction() as s:
        entries = AuditTrail(cli_clock(ctx, cli_config(ctx))).recent(s, subject, limit)
        lines = [inline(format_entry(e)) for e in entries]  # one entry, one line
    store.dispose()
    for line in lines:
        echo(line)
    if not lines:
        echo("no audit entries" + (f" about {subject!r}" if subject else ""))


@click.group()
def factor() -> None:
    """External values conditions read as factor.NAME."""


@factor.command("set")
@click.argument("name")
@click.argument("value")
@click.option("--by", "by", default=None, help="Person id recorded as who set it.")
@click.pass_context
def factor_set(ctx: click.Context, name: str, value: str, by: str | None) -> None:
    """Set NAME to VALUE (a number, true/false, a date YYYY-MM-DD, or text)."""
    store = open_store(ctx)
    clock = cli_clock(ctx, cli_config(ctx))
    try:
        with store.transaction() as s:
            parsed = Factors(clock, AuditTrail(clock)).set(s, name, value, by, "cli")
    except FactorError as exc:
        echo(f"ringi: {exc}", err=True)
        sys.exit(1)
    finally:
        store.dispose()
    echo(f"factor.{name} = {describe(parsed)}")


@factor.command("unset")
@click.argument("name")
@click.option("--by", "by", default=None, help="Person id recorded as who removed it.")
@click.pass_context
def factor_unset(ctx: click.Context, name: str, by: str | None) -> None:
    """Remove NAME; conditions that read it then see it unset."""
    store = open_store(ctx)
    clock = cli_clock(ctx, cli_config(ctx))
    try:
        with store.transaction() as s:
            removed = Factors(clock, AuditTrail(clock)).unset(s, name, by, "cli")
    except FactorError as exc:
        echo(f"ringi: {exc}", err=True)
        sys.exit(1)
    finally:
        store.dispose()
    if not removed:
        echo(f"ringi: no factor {name}", err=True)
        sys.exit(1)
    echo(f"factor.{name} removed")


@factor.command("list")
@click.pass_context
def factor_list(ctx: click.Context) -> None:
    """Every factor, its value, and when and by whom it was last set."""
    store = open_store(ctx)
    clock = cli_clock(ctx, cli_config(ctx))
    with store.transaction() as s:
        rows = [(f.name, describe(f.value), f.updated_at, f.updated_by)
                for f in Factors(clock, AuditTrail(clock)).rows(s)]
    store.dispose()
    for name, value, at, by in rows:
        echo(f"{name:<24} {inline(value):<24} set {at:%Y-%m-%d %H:%M} by {inline(by or '-')}")
    if not rows:
        echo("no factors set")


@click.group()
def budget() -> None:
    """Period budgets that approvals consume."""


@budget.command("show")
@click.option("--all", "all_periods", is_flag=True, help="Every period kept, not only the "
              "current one.")
@click.pass_context
def budget_show(ctx: click.Context, all_periods: bool) -> None:
    """Each budget's limit, consumption and what remains."""
    store = open_store(ctx)
    clock = cli_clock(ctx, cli_config(ctx))
    with store.transaction() as s:
        lines = Budgets(clock, AuditTrail(clock), cli_config(ctx).workflow.zone).show(
            s, all_periods)
    store.dispose()
    if not lines:
        echo("no budgets yet")
        return
    echo(f"{'set':<28} {'budget':<14} {'period':<8} {'limit':>18} {'consumed':>18} "
               f"{'remaining':>18}")
    for b in lines:
        echo(f"{b.set_name:<28} {b.budget:<14} {b.period:<8} {b.limit:>18,.2f} "
                   f"{b.consumed:>18,.2f} {b.remaining:>18,.2f}")
