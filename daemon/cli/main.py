"""The `ringi` command: run the daemon and inspect or administer it."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import tomli_w

from daemon.cli import systemd
from daemon.cli.common import EXIT_USAGE, BoundedInt, cli_clock
from daemon.cli.common import cli_config as _config
from daemon.cli.inspect import print_case, print_status
from daemon.cli.output import SafeFormatter, echo
from daemon.cli.partners import partners
from daemon.cli.records import audit, budget, factor
from daemon.cli.relations import relation
from daemon.cli.reorg import reorg
from daemon.cli.rules import rules
from daemon.clock import OffsetClockError, parse_offset
from daemon.config import config_as_dict
from daemon.directory.loader import DirectoryFileError


def _app(ctx: click.Context, migrate: bool = True) -> Any:
    from daemon.app import App

    cfg = _config(ctx)
    clock = cli_clock(ctx, cfg)
    with _startup_errors():
        app = App(cfg, clock)
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
        echo(f"ringi: {exc}", err=True)
        for line in [*getattr(exc, "errors", []), *getattr(exc, "problems", [])]:
            echo(f"  {line}", err=True)
        sys.exit(EXIT_USAGE)


def _offset(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_offset(value)
    except OffsetClockError as exc:
        raise click.BadParameter(str(exc)) from None


class RingiGroup(click.Group):
    """`ringi status --config F` means `ringi --config F status`: people put options last."""

    HOISTED = ("--config", "--clock-offset")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist(args, self.HOISTED))


def hoist(args: list[str], names: tuple[str, ...]) -> list[str]:
    """Move the group's own options (and their values) from anywhere before `--` to the
    front, where click looks for them."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        if arg in names and i + 1 < len(args):
            front += args[i:i + 2]
            i += 2
            continue
        if any(arg.startswith(n + "=") for n in names):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


@click.group(cls=RingiGroup)
@click.version_option(package_name="ringi", prog_name="ringi")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="TOML configuration file (default: $RINGI_CONFIG or ./ringi.toml).")
@click.option("--clock-offset", "clock_offset", envvar="RINGI_CLOCK_OFFSET", default=None,
              callback=_offset, metavar="OFFSET", show_envvar=True,
              help="Run with the clock shifted (31d, 12h, 90m, -2d, 1d12h, P31D) to rehearse "
                   "a later time; refused when [instance] production = true.")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, clock_offset: timedelta | None) -> None:
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    ctx.obj["clock_offset"] = clock_offset


@cli.command("check-config")
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Print the effective configuration (file + environment + defaults)."""
    cfg = _config(ctx)
    echo(tomli_w.dumps(config_as_dict(cfg)), nl=False)


@cli.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the daemon until SIGTERM/SIGINT."""
    cfg = _config(ctx)
    handler = logging.StreamHandler()  # log text quotes mail: made terminal-safe too
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=cfg.instance.log_level, handlers=[handler])
    if cfg.instance.log_level != "DEBUG":  # aiosmtpd logs every connection at INFO
        logging.getLogger("mail.log").setLevel(logging.WARNING)
    ctx.find_root().obj["daemon_log"] = True  # a shifted clock is announced in the log
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
    logging.getLogger("daemon").info("stopping: finishing the work in hand")
    app.stop()
    logging.getLogger("daemon").info("stopped")


@cli.group()
def directory() -> None:
    """Organisation directory."""


@directory.command("import")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Validate and show the diff without applying.")
@click.pass_context
def directory_import(ctx: click.Context, file: Path, dry_run: bool) -> None:
    """Validate FILE and replace the directory with it; prints the diff."""
    from daemon.cases.recheck import check_all
    from daemon.cases.reorganisation import Report
    from daemon.directory.filerules import FileRules
    from daemon.directory.importer import (
        DirectoryDiff,
        apply_directory,
        import_directory_file,
        read_directory_file,
    )

    app = _app(ctx)
    rules = FileRules.from_config(app.cfg)  # the file's relations pass the relation rules
    try:
        if dry_run:
            data, _ = read_directory_file(file)
            with app.store.sessions() as s:
                diff = apply_directory(s, data, app.clock.now(), rules)
                s.flush()
                checks = check_all(app.workflow, s)  # what it would do to waiting cases
                s.rollback()  # a dry run shows the diff and keeps nothing
            for line in diff.lines():
                echo(line)
            echo("")
            for line in Report(0, checks, diff).lines("waiting cases"):
                echo(line)
            return
        else:
            diff = import_directory_file(app.store, file, app.clock.now(),
                                         after=app.reroute_after_import,
                                         rules=rules) or DirectoryDiff()
    except DirectoryFileError as exc:
        echo(f"ringi: {file} refused, nothing imported:", err=True)
        for line in exc.errors:
            echo(f"  {line}", err=True)
        sys.exit(1)
    for line in diff.lines():
        echo(line)


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
        echo(f"ringi: no case {number}", err=True)
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
            echo(f"ringi: no case {number}" if found is None else f"ringi: no person {by}",
                       err=True)
            sys.exit(1)
        try:
            asked = RouteEditor(app.workflow).edit(s, found, editor, action, person, reason)
        except RouteEditError as exc:
            echo(f"ringi: {exc}", err=True)
            sys.exit(1)
    echo(f"{number}: {action} done; now asked: {', '.join(m.id for m in asked) or '-'}")
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
    from daemon.routing.registry import StoredVersionError
    from daemon.store.models import Case

    app = _app(ctx)
    with app.store.transaction() as s:
        found = s.scalar(select(Case).where(Case.number == number))
        if found is None or found.state != CaseState.SUSPENDED:
            echo(f"ringi: no case {number}" if found is None
                       else f"ringi: {number} is {found.state}, not suspended", err=True)
            sys.exit(1)
        actor = member(s, by)
        found.state = CaseState.IN_REVIEW
        app.workflow.record(s, found, "resumed", actor, detail="resumed by command")
        last = app.workflow.previous_actor(s, found, app.workflow.next_slot(s, found))
        try:
            asked = app.workflow.route(s, found, Pos.of(found.route), False,
                                       last or actor or member(s, found.requester_id))
        except StoredVersionError as exc:  # rolled back: the case stays suspended
            echo(f"ringi: {number} cannot resume: {exc}", err=True)
            sys.exit(1)
        state = found.state
    echo(f"{number}: resumed; now {state}"
               + (f", asked: {', '.join(m.id for m in asked)}" if asked else ""))
    app.outbox_runner.drain()


@cli.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Daemons running, cases by state, the oldest waiting approval, held and suspended
    cases, dead letters; then queue depths and recent errors."""
    print_status(_app(ctx))


@cli.group()
def queue() -> None:
    """Work queue maintenance."""


@queue.command("retry")
@click.argument("item_id", type=BoundedInt())
@click.pass_context
def queue_retry(ctx: click.Context, item_id: int) -> None:
    """Put a dead-letter item back in its queue."""
    app = _app(ctx)
    if not app.queue.retry(item_id):
        echo(f"ringi: item {item_id} is not in the dead-letter state", err=True)
        sys.exit(1)
    echo(f"item {item_id} queued again")


for group in (audit, factor, budget, partners, rules, reorg, relation):
    cli.add_command(group)


def main() -> None:
    cli(obj={})
