"""The `ringi` command: run the daemon and inspect or administer it."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import click
import tomli_w

from daemon.cli import systemd
from daemon.cli.common import EXIT_USAGE
from daemon.cli.common import cli_config as _config
from daemon.cli.inspect import print_case, print_status
from daemon.cli.partners import partners
from daemon.cli.records import audit, budget, factor
from daemon.conditions.budgets import BudgetSpec
from daemon.config import config_as_dict
from daemon.directory.loader import DirectoryFileError


def _app(ctx: click.Context, migrate: bool = True) -> Any:
    from daemon.app import App

    cfg = _config(ctx)
    with _startup_errors():
        app = App(cfg)
        if migrate:
            app.store.migrate()
    return app


@contextmanager
def _startup_errors() -> Iterator[None]:
    """Configuration-level failures: a readable list and exit 2, never a traceback."""
    from daemon.app import StartupError
    from daemon.cases.casetypes import CaseTypeError
    from daemon.security.secrets import InsecureSecretError

    try:
        yield
    except (InsecureSecretError, CaseTypeError, StartupError, DirectoryFileError) as exc:
        click.echo(f"ringi: {exc}", err=True)
        for line in [*getattr(exc, "errors", []), *getattr(exc, "problems", [])]:
            click.echo(f"  {line}", err=True)
        sys.exit(EXIT_USAGE)


@click.group()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="TOML configuration file (default: $RINGI_CONFIG or ./ringi.toml).")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


@cli.command("check-config")
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Print the effective configuration (file + environment + defaults)."""
    cfg = _config(ctx)
    click.echo(tomli_w.dumps(config_as_dict(cfg)), nl=False)


@cli.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the daemon until SIGTERM/SIGINT."""
    cfg = _config(ctx)
    logging.basicConfig(
        level=cfg.instance.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if cfg.instance.log_level != "DEBUG":  # aiosmtpd logs every connection at INFO
        logging.getLogger("mail.log").setLevel(logging.WARNING)
    app = _app(ctx, migrate=False)
    with _startup_errors():
        app.prepare()
        app.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    systemd.notify("READY=1\nSTATUS=accepting requests")
    interval = systemd.watchdog_interval()
    while not stop.wait(interval or 3600):
        if interval:
            systemd.notify("WATCHDOG=1")
    systemd.notify("STOPPING=1")
    app.stop()


@cli.group()
def directory() -> None:
    """Organisation directory."""


@directory.command("import")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Validate and show the diff without applying.")
@click.pass_context
def directory_import(ctx: click.Context, file: Path, dry_run: bool) -> None:
    """Validate FILE and replace the directory with it; prints the diff."""
    from daemon.directory.importer import (
        DirectoryDiff,
        apply_directory,
        import_directory_file,
        read_directory_file,
    )

    app = _app(ctx)
    try:
        if dry_run:
            data, _ = read_directory_file(file)
            with app.store.sessions() as s:
                diff = apply_directory(s, data)
                s.rollback()  # a dry run shows the diff and keeps nothing
        else:
            diff = import_directory_file(app.store, file, app.clock.now()) or DirectoryDiff()
    except DirectoryFileError as exc:
        click.echo(f"ringi: {file} refused, nothing imported:", err=True)
        for line in exc.errors:
            click.echo(f"  {line}", err=True)
        sys.exit(1)
    for line in diff.lines():
        click.echo(line)


@cli.group()
def case() -> None:
    """Cases."""


@case.command("show")
@click.argument("number")
@click.pass_context
def case_show(ctx: click.Context, number: str) -> None:
    """Print a case's fields and timeline."""
    app = _app(ctx)
    if not print_case(app, number):
        click.echo(f"ringi: no case {number}", err=True)
        sys.exit(1)


@case.command("route")
@click.argument("number")
@click.argument("action", type=click.Choice(["skip", "add", "replace"]))
@click.argument("person", required=False)
@click.option("--by", "by", required=True, help="Person id of the authorised editor.")
@click.option("--reason", default="", help="Why, for the history.")
@click.pass_context
def case_route(ctx: click.Context, number: str, action: str, person: str | None, by: str,
               reason: str) -> None:
    """Alter a running case's route: skip its current step, add PERSON, or replace with PERSON."""
    from sqlalchemy import select

    from daemon.cases.routeedit import RouteEditError, RouteEditor
    from daemon.directory.lookup import member
    from daemon.store.models import Case

    app = _app(ctx)
    with app.store.transaction() as s:
        found = s.scalar(select(Case).where(Case.number == number))
        editor = member(s, by)
        if found is None or editor is None:
            click.echo(f"ringi: no case {number}" if found is None else f"ringi: no person {by}",
                       err=True)
            sys.exit(1)
        try:
            asked = RouteEditor(app.workflow).edit(s, found, editor, action, person, reason)
        except RouteEditError as exc:
            click.echo(f"ringi: {exc}", err=True)
            sys.exit(1)
    click.echo(f"{number}: {action} done; now asked: {', '.join(m.id for m in asked) or '-'}")
    app.outbox_runner.drain()


@case.command("resume")
@click.argument("number")
@click.option("--by", default="admin", show_default=True, help="who resumes it (history)")
@click.pass_context
def case_resume(ctx: click.Context, number: str, by: str) -> None:
    """Continue a suspended case from where it stopped, once the cause is fixed (e.g. a
    document that could not be stamped was restored, or an administrator now exists)."""
    from sqlalchemy import select

    from daemon.cases.states import CaseState
    from daemon.directory.lookup import member
    from daemon.routing.engine import Pos
    from daemon.store.models import Case

    app = _app(ctx)
    with app.store.transaction() as s:
        found = s.scalar(select(Case).where(Case.number == number))
        if found is None or found.state != CaseState.SUSPENDED:
            click.echo(f"ringi: no case {number}" if found is None
                       else f"ringi: {number} is {found.state}, not suspended", err=True)
            sys.exit(1)
        actor = member(s, by)
        found.state = CaseState.IN_REVIEW
        app.workflow.record(s, found, "resumed", actor, detail="resumed by command")
        last = app.workflow.previous_actor(s, found, app.workflow.next_slot(s, found))
        asked = app.workflow.route(s, found, Pos.of(found.route), False,
                                   last or actor or member(s, found.requester_id))
        state = found.state
    click.echo(f"{number}: resumed; now {state}"
               + (f", asked: {', '.join(m.id for m in asked)}" if asked else ""))
    app.outbox_runner.drain()


@cli.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Queue depths, oldest waiting item, dead letters and recent errors."""
    print_status(_app(ctx))


@cli.group()
def rules() -> None:
    """Case types, workflow templates, condition sets, execution destinations and partners."""


@rules.command("check")
@click.pass_context
def rules_check(ctx: click.Context) -> None:
    """Validate every rule file (case types, workflows, conditions, destinations, partners);
    list what applies and run the condition sets' examples."""
    from daemon.conditions.examine import examine
    from daemon.publication.partners import PartnerError

    app = _app(ctx)
    for ct in app.types.all():
        t = app.registry.templates.for_case_type(ct.name)
        phases = " → ".join(p.name for p in t.phases)
        click.echo(f"{ct.name:<16} workflow {t.name} ({t.source}): {phases}")
    for d in app.executions.destinations.all():
        types = ", ".join(sorted(d.case_types)) or "any other case"
        when = f" when {d.when.source}" if d.when else ""
        click.echo(f"destination {d.name}: {types}{when} -> {d.address} ({d.format}, "
                   f"{d.locale}, template {d.template}; open {d.calendar.describe()})")
    failures = 0
    try:
        for p in app.partners.check_files(app.cfg.partners_dir):
            click.echo(f"partner {p.name}: {', '.join(p.case_types)} -> {p.folder} "
                       f"(RSA-{p.key.bits} key {p.key.fingerprint[:16]}, {p.source})")
    except PartnerError as exc:
        for line in exc.errors:
            click.echo(f"FAIL  {line}")
        failures += len(exc.errors)
    kinds_of = {t.name: {f.name: str(f.kind) for f in t.fields} for t in app.types.all()}
    today = app.clock.now().date().isoformat()
    sets: list[tuple[str, Any]] = [(cs.name, cs) for cs in app.workflow.conditions.sets]
    with app.store.transaction() as s:  # sets edited by mail are checked as well
        sets += app.workflow.library.stored_apart(s)
    for label, cs in sets:
        if isinstance(cs, list):  # stored, but no longer valid against today's rules
            for line in cs:
                click.echo(f"FAIL  {label}: {line}")
            failures += len(cs)
            continue
        for ex in cs.examples:
            exam = examine([cs], ex.fields, kinds_of.get(ex.case_type, {}),
                           {"case_type": ex.case_type, "requester_unit": ex.requester_unit,
                            "today": ex.today or today},
                           ex.factors, partial(_example_budget, ex.budgets))
            got = ("approve" if exam.passed else "ask" if exam.undecidable else "reject")
            failing = tuple(m.condition for m in exam.missed)
            ok = got == ex.expect and (not ex.failing or set(failing) == set(ex.failing))
            failures += not ok
            why = f" (failing: {', '.join(failing)})" if failing else ""
            click.echo(f"{'pass' if ok else 'FAIL'}  {label}: {ex.name}: {got}{why}")
    if failures:
        click.echo(f"{failures} check(s) failed", err=True)
        sys.exit(1)
    click.echo("ok: rules compile" + (" and every example passes" if sets else ""))


@cli.group()
def queue() -> None:
    """Work queue maintenance."""


def _example_budget(remaining: dict[str, Any], _cs: object, spec: BudgetSpec) -> Decimal:
    """What an example says is left of a budget; a fresh period where it says nothing."""
    return Decimal(str(remaining.get(spec.name, spec.limit)))


@queue.command("retry")
@click.argument("item_id", type=int)
@click.pass_context
def queue_retry(ctx: click.Context, item_id: int) -> None:
    """Put a dead-letter item back in its queue."""
    app = _app(ctx)
    if not app.queue.retry(item_id):
        click.echo(f"ringi: item {item_id} is not in the dead-letter state", err=True)
        sys.exit(1)
    click.echo(f"item {item_id} queued again")


for group in (audit, factor, budget, partners):
    cli.add_command(group)


def main() -> None:
    cli(obj={})
