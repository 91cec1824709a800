"""`ringi rules check`: every rule file, the sets stored by mail, and what is in force.

Exit 0 when everything is valid and every example passes; exit 1 when anything is wrong —
a refused file (and what stays in force instead), a person or unit the directory does not
hold, a failing example, or a configuration with which ringi would refuse to start.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import select

from daemon.cli.common import cli_config
from daemon.cli.output import echo
from daemon.conditions.budgets import BudgetSpec
from daemon.conditions.check import (
    Directory,
    directory_in_file,
    directory_in_store,
    directory_problems,
    example_kinds,
    example_problems,
    template_problems,
)
from daemon.conditions.examine import examine
from daemon.conditions.sets import ConditionSet
from daemon.directory.loader import DirectoryFileError
from daemon.store.condition_models import ConditionSetVersion

if TYPE_CHECKING:
    from daemon.app import App


@click.group()
def rules() -> None:
    """Case types, workflow templates, condition sets, execution destinations and partners."""


def _fail(line: str) -> int:
    echo(f"FAIL  {line}")
    return 1


# Seconds `rules check` waits for PostgreSQL to accept a connection: a host that drops
# packets would otherwise hold the command for minutes (the TCP timeout) with no output.
CONNECT_TIMEOUT = 10


def _build_app(ctx: click.Context) -> App:
    """The daemon as it would start; a refusal is a failed check (exit 1), not a crash."""
    from daemon.app import App, StartupError
    from daemon.cases.casetypes import CaseTypeError
    from daemon.security.secrets import InsecureSecretError

    try:
        return App(cli_config(ctx), connect_timeout=CONNECT_TIMEOUT)
    except (StartupError, CaseTypeError, InsecureSecretError) as exc:
        lines = [*getattr(exc, "errors", []), *getattr(exc, "problems", [])] or [str(exc)]
        echo(f"ringi would refuse to start: {exc}")
        for line in lines:
            _fail(line)
        echo(f"{len(lines)} check(s) failed", err=True)
        sys.exit(1)


def _reachable(app: App) -> bool:
    try:
        app.store.migrate()
    except Exception as exc:  # any driver error: say so and check what needs no database
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        if "timeout" in first.lower():
            first = f"no answer within {CONNECT_TIMEOUT} s: {first}"
        _fail(f"database: cannot be reached ({first}); sets stored by mail, the stored "
              "directory and the versions in force are not checked")
        return False
    return True


def _directory(app: App, reachable: bool) -> tuple[Directory | None, int]:
    """The directory in the database, else the configured file ringi imports at start."""
    if reachable:
        with app.store.transaction() as s:
            found = directory_in_store(s)
        if found is not None:
            return found, 0
    path = app.cfg.directory.file
    if path is None:
        return None, _fail("directory: " + ("the database holds no directory" if reachable
                                            else "the database cannot be read")
                           + " and no [directory] file is configured: the people and units "
                           "condition sets name cannot be checked (import one with "
                           "`ringi directory import FILE`)")
    try:
        return directory_in_file(path), 0
    except DirectoryFileError as exc:
        return None, sum(_fail(f"directory: {line}") for line in exc.errors)


def _broken_files(app: App, reachable: bool) -> int:
    """Refused files, each with what stays in force in its place."""
    failures = 0
    if reachable:
        app.registry.restore([b for b in app.broken_rules if b.kind == "workflow template"])
    for b in app.broken_rules:
        failures += sum(_fail(line) for line in b.errors)
        if b.kind == "condition set" and reachable:
            with app.store.transaction() as s:
                kept = s.scalar(select(ConditionSetVersion).where(
                    ConditionSetVersion.active, ConditionSetVersion.origin == "file",
                    ConditionSetVersion.source == b.path).limit(1))
                b.in_force = (app.workflow.library.kept(kept) if kept else
                              "no good version of this file is stored: its setter decides "
                              "the cases it would cover in person")
        echo(f"      {b.path}: in force instead: {b.in_force or 'unknown (no database)'}")
    return failures


def _example_budget(remaining: dict[str, Any], _cs: object, spec: BudgetSpec) -> Decimal:
    """What an example says is left of a budget; a fresh period where it says nothing."""
    return Decimal(str(remaining.get(spec.name, spec.limit)))


def _check_set(label: str, cs: ConditionSet, directory: Directory | None,
               kinds_of: dict[str, dict[str, str]], today: str) -> int:
    failures = 0
    if directory is not None:
        failures += sum(_fail(f"{label}: {p} ({directory.source})")
                        for p in directory_problems(cs, directory))
    for ex in cs.examples:
        problems = example_problems(cs, ex, kinds_of)
        if problems:
            failures += sum(_fail(f"{label}: {p}") for p in problems)
            continue
        exam = examine([cs], ex.fields, example_kinds(cs, ex, kinds_of),
                       {"case_type": ex.case_type, "requester_unit": ex.requester_unit,
                        "today": ex.today or today},
                       ex.factors, partial(_example_budget, ex.budgets))
        got = ("approve" if exam.passed else "ask" if exam.undecidable else "reject")
        failing = tuple(m.condition for m in exam.missed)
        ok = got == ex.expect and (not ex.failing or set(failing) == set(ex.failing))
        failures += not ok
        why = f" (failing: {', '.join(failing)})" if failing else ""
        echo(f"{'pass' if ok else 'FAIL'}  {label}: {ex.name}: {got}{why}")
    return failures


@rules.command("check")
@click.pass_context
def rules_check(ctx: click.Context) -> None:
    """Validate every rule file (case types, workflows, conditions, destinations, partners),
    the people and units condition sets name, and run the sets' examples."""
    from daemon.publication.partners import PartnerError

    app = _build_app(ctx)
    reachable = _reachable(app)
    failures = int(not reachable) + _broken_files(app, reachable)
    for ct in app.types.all():
        t = app.registry.templates.for_case_type(ct.name)
        phases = " → ".join(p.name for p in t.phases)
        echo(f"{ct.name:<16} workflow {t.name} ({t.source}): {phases}")
    for d in app.executions.destinations.all():
        types = ", ".join(sorted(d.case_types)) or "any other case"
        when = f" when {d.when.source}" if d.when else ""
        echo(f"destination {d.name}: {types}{when} -> {d.address} ({d.format}, "
             f"{d.locale}, template {d.template}; open {d.calendar.describe()})")
    try:
        for p in app.partners.check_files(app.cfg.partners_dir):
            echo(f"partner {p.name}: {', '.join(p.case_types)} -> {p.folder} "
                 f"(RSA-{p.key.bits} key {p.key.fingerprint[:16]}, {p.source})")
    except PartnerError as exc:
        failures += sum(_fail(line) for line in exc.errors)
    kinds_of = {t.name: {f.name: str(f.kind) for f in t.fields} for t in app.types.all()}
    sets: list[tuple[str, Any]] = [(cs.name, cs) for cs in app.workflow.conditions.sets]
    if reachable:
        with app.store.transaction() as s:  # sets edited by mail are checked as well
            sets += app.workflow.library.stored_apart(s)
    templates = [t for t in {id(t): t for t in (*app.registry.templates.by_case_type.values(),
                                                 app.registry.templates.default)}.values()
                 if not t.source.startswith("<held:")]  # a stand-in names nobody on purpose
    names_people = any(st.people or st.unit or st.groups
                       for t in templates for ph in t.phases for st in ph.steps)
    directory, missing = _directory(app, reachable) if sets or names_people else (None, 0)
    failures += missing
    if directory is not None:
        where = directory.source
        for t in templates:
            failures += sum(_fail(f"workflow {t.name} ({t.source}): {p} ({where})")
                            for p in template_problems(t, directory))
    today = app.clock.now().date().isoformat()
    for label, cs in sets:
        if isinstance(cs, list):  # stored, but no longer valid against today's rules
            failures += sum(_fail(f"{label}: {line}") for line in cs)
            continue
        failures += _check_set(label, cs, directory, kinds_of, today)
    app.store.dispose()
    if failures:
        echo(f"{failures} check(s) failed", err=True)
        sys.exit(1)
    echo("ok: rules compile" + (" and every example passes" if sets else ""))
