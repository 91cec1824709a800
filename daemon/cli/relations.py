"""`ringi relation`: register, change, end and read approval relations (SPEC 7).

The same service as the `relation` mail commands (daemon.directory.relations), with `--by`
naming the registrar: every refusal is printed with its reason and exit 1; a change that
leaves a gap prints the days and exit 1 unless `--accept-gap`.
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Literal

import click
from sqlalchemy.orm import Session

from daemon.audit.trail import AuditTrail
from daemon.cli.common import BoundedInt, cli_clock, cli_config, open_store
from daemon.cli.output import echo, inline
from daemon.directory.importer import relation_record
from daemon.directory.records import RelationRecord
from daemon.directory.relations import Action, Outcome, RelationRegistry, registry_for
from daemon.store.db import Store
from daemon.store.directory_models import ApprovalRelation

KINDS = click.Choice(["responsible", "proxy"])


@click.group()
def relation() -> None:
    """Approval relations: who approves for a person or a unit, and who stands in."""


def _date(value: str | None, what: str) -> datetime.date | None:
    if value in (None, "", "open"):
        return None
    try:
        return datetime.date.fromisoformat(str(value))
    except ValueError:
        raise click.BadParameter(f"{what} must be a date YYYY-MM-DD, got {value!r}") from None


def _open(ctx: click.Context) -> tuple[RelationRegistry, Store]:
    cfg = cli_config(ctx)
    clock = cli_clock(ctx, cfg)
    return registry_for(cfg, clock, AuditTrail(clock)), open_store(ctx)


def _report(out: Outcome, what: str) -> None:
    if out.state == "stored":
        echo(f"{what}: relation {out.relation_id}"
             + (f" ({inline(out.relation.describe())})" if out.relation else "")
             + (": cancelled, it had not begun" if out.cancelled else ""))
        for g in out.gaps:
            echo(f"  gap accepted: no responsible approver {g.describe()}")
        return
    if out.state == "refused":
        echo(f"refused, nothing stored ({len(out.refusals)} reason(s)):", err=True)
        for r in out.refusals:
            echo(f"  - {inline(r.text())}", err=True)
        sys.exit(1)
    echo("warning, nothing stored: this leaves no responsible approver", err=True)
    for g in out.gaps:
        echo(f"  - {g.describe()}", err=True)
    echo("run the command again with --accept-gap to store it anyway", err=True)
    sys.exit(1)


def _run(ctx: click.Context, by: str, action: Action, new: RelationRecord | None,
         relation_id: int | None, note: str, accept_gap: bool,
         change: dict[str, object] | None = None) -> None:
    registry, store = _open(ctx)
    try:
        with store.transaction() as s:
            if new is None:  # an update or end: the relation as it stands, changed
                row = s.get(ApprovalRelation, relation_id) if relation_id is not None else None
                if row is None:
                    echo(f"ringi: no relation {relation_id}", err=True)
                    sys.exit(1)
                change = change or {}
                if "valid_to" in change and change["valid_to"] is None and action == "end":
                    change["valid_to"] = registry.today()  # ends today unless told
                new = replace(relation_record(row), **change)  # type: ignore[arg-type]
            out = registry.change(s, by, action, new, relation_id, "command", note, accept_gap)
    finally:
        store.dispose()
    _report(out, {"register": "registered", "update": "updated", "end": "ended"}[action])


@relation.command("add")
@click.option("--by", "by", required=True, help="The registrar (person id).")
@click.option("--approver", required=True)
@click.option("--person", default=None, help="The object: a person ...")
@click.option("--unit", "unit_id", default=None, help="... or a unit.")
@click.option("--kind", type=KINDS, required=True)
@click.option("--from", "valid_from", required=True, help="First day, YYYY-MM-DD.")
@click.option("--to", "valid_to", default=None, help="Last day (omit: open-ended).")
@click.option("--note", default="")
@click.option("--accept-gap", is_flag=True, help="Store even if it leaves days uncovered.")
@click.pass_context
def relation_add(ctx: click.Context, by: str, approver: str, person: str | None,
                 unit_id: str | None, kind: str, valid_from: str, valid_to: str | None,
                 note: str, accept_gap: bool) -> None:
    """Register a relation: APPROVER approves for (or stands in for) the object."""
    if (person is None) == (unit_id is None):
        raise click.UsageError("give exactly one of --person or --unit")
    object_type: Literal["person", "unit"] = "person" if person else "unit"
    start = _date(valid_from, "--from")
    assert start is not None
    new = RelationRecord(approver, object_type, str(person or unit_id), kind, start,
                         _date(valid_to, "--to"), by)
    _run(ctx, by, "register", new, None, note, accept_gap)


@relation.command("update")
@click.argument("relation_id", type=BoundedInt())
@click.option("--by", "by", required=True, help="Who changes it (its registrar).")
@click.option("--approver", default=None)
@click.option("--from", "valid_from", default=None)
@click.option("--to", "valid_to", default=None, help="Last day ('open': open-ended).")
@click.option("--note", default="")
@click.option("--accept-gap", is_flag=True)
@click.pass_context
def relation_update(ctx: click.Context, relation_id: int, by: str, approver: str | None,
                    valid_from: str | None, valid_to: str | None, note: str,
                    accept_gap: bool) -> None:
    """Change a relation's approver or period."""
    change: dict[str, object] = {}
    if approver:
        change["approver"] = approver
    if valid_from:
        change["valid_from"] = _date(valid_from, "--from")
    if valid_to is not None:
        change["valid_to"] = _date(valid_to, "--to")
    _run(ctx, by, "update", None, relation_id, note, accept_gap, change)


@relation.command("end")
@click.argument("relation_id", type=BoundedInt())
@click.option("--by", "by", required=True, help="Who ends it (its registrar).")
@click.option("--on", "on", default=None, help="Its last day (default: today).")
@click.option("--accept-gap", is_flag=True)
@click.pass_context
def relation_end(ctx: click.Context, relation_id: int, by: str, on: str | None,
                 accept_gap: bool) -> None:
    """End a relation: it holds up to and including its last day."""
    _run(ctx, by, "end", None, relation_id, "", accept_gap, {"valid_to": _date(on, "--on")})


@relation.command("confirm")
@click.argument("code")
@click.option("--by", "by", required=True)
@click.pass_context
def relation_confirm(ctx: click.Context, code: str, by: str) -> None:
    """Store a change kept aside by a gap warning (its one-time code)."""
    registry, store = _open(ctx)
    try:
        with store.transaction() as s:
            out = registry.confirm(s, by, code, "command")
    finally:
        store.dispose()
    if out is None:
        echo("ringi: no change waits for that code (wrong, used or expired)", err=True)
        sys.exit(1)
    _report(out, "stored")


@contextmanager
def _reading(ctx: click.Context, by: str) -> Iterator[tuple[RelationRegistry, Session]]:
    """A transaction for someone reading relations: only a person in the directory may."""
    registry, store = _open(ctx)
    try:
        with store.transaction() as s:
            if registry.party(s, by) is None:
                echo(f"ringi: {by!r} is not in the directory", err=True)
                sys.exit(1)
            yield registry, s
    finally:
        store.dispose()


@relation.command("list")
@click.argument("subject", required=False)
@click.option("--by", "by", required=True, help="Who asks (a person in the directory).")
@click.pass_context
def relation_list(ctx: click.Context, subject: str | None, by: str) -> None:
    """Relations in force or to come, naming SUBJECT (a person or unit) or all."""
    with _reading(ctx, by) as (registry, s):
        lines = registry.listing(s, subject)
    for line in lines:
        echo(inline(line))
    if not lines:
        echo("no relations" + (f" naming {subject!r}" if subject else ""))


@relation.command("history")
@click.argument("subject", required=False)
@click.option("--by", "by", required=True, help="Who asks (a person in the directory).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV instead of text.")
@click.pass_context
def relation_history(ctx: click.Context, subject: str | None, by: str, as_csv: bool) -> None:
    """Every stored change of the relations naming SUBJECT (or all), oldest first."""
    with _reading(ctx, by) as (registry, s):
        rows = registry.history(s, subject)
        text = registry.history_csv(rows) if as_csv else "\n".join(registry.history_lines(rows))
    for line in text.splitlines():
        echo(line if as_csv else inline(line))
    if not as_csv and not rows:
            echo("no history" + (f" naming {subject!r}" if subject else ""))
