"""`ringi reorg`: the reorganisation procedure (daemon.cases.reorganisation).

plan FILE [--effective TIME] -> verify (any number of times) -> begin -> commit, or rollback;
status at any point. Exit 0 when done, 1 when refused (the reason and, for a failing
verification, the report are printed), 2 for usage errors.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from daemon.cli.output import echo


def _app(ctx: click.Context) -> Any:
    from daemon.cli.main import _app as app  # (main imports this module)

    return app(ctx)


def _show(report: Any, as_json: bool) -> None:
    if as_json:
        echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
        return
    for line in report.lines():
        echo(line)


def _refused(exc: Any, as_json: bool = False) -> None:
    echo(f"ringi: {exc}", err=True)
    if exc.report is not None:
        _show(exc.report, as_json)
    sys.exit(1)


def _call(ctx: click.Context, step: str, *args: Any, as_json: bool = False) -> Any:
    """One step of the procedure; a refusal prints its reason (and report) and exits 1."""
    from daemon.cases.reorganisation import ReorgError

    try:
        return getattr(_app(ctx).reorganisations, step)(*args)
    except ReorgError as exc:
        _refused(exc, as_json)


@click.group()
def reorg() -> None:
    """Reorganisations: plan a new directory, verify it against waiting cases, apply it."""


@reorg.command("plan")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--effective", help="When it takes effect by itself (company time zone), "
              "e.g. 2027-04-01T00:00.")
@click.option("--by", default="administrator", help="Who plans it, for the audit trail.")
@click.option("--json", "as_json", is_flag=True, help="Print the verification as JSON.")
@click.pass_context
def plan(ctx: click.Context, file: Path, effective: str | None, by: str,
         as_json: bool) -> None:
    """Store FILE as the next directory and verify it against every waiting case."""
    from daemon.cases.reorganisation import ReorgError
    from daemon.directory.loader import DirectoryFileError

    app = _app(ctx)
    when = None
    if effective:
        try:
            when = datetime.fromisoformat(effective)
        except ValueError:
            echo(f"ringi: --effective {effective!r} is not a time such as 2027-04-01T00:00",
                 err=True)
            sys.exit(2)
        if when.tzinfo is None:
            when = when.replace(tzinfo=app.cfg.workflow.zone)
    try:
        report = app.reorganisations.plan(file, when, by)
    except DirectoryFileError as exc:
        echo(f"ringi: {file} refused, nothing planned:", err=True)
        for line in exc.errors:
            echo(f"  {line}", err=True)
        sys.exit(1)
    except ReorgError as exc:
        _refused(exc)
    if not as_json:
        echo(f"planned: reorganisation {report.reorg_id}"
             + (f", effective {when.isoformat()}" if when else ", begin and commit by hand"))
    _show(report, as_json)


@reorg.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def verify(ctx: click.Context, as_json: bool) -> None:
    """What the planned (or begun) reorganisation does to every waiting case."""
    report = _call(ctx, "verify")
    _show(report, as_json)
    sys.exit(1 if report.failing else 0)


@reorg.command("begin")
@click.option("--by", default="administrator", help="Who begins it, for the audit trail.")
@click.pass_context
def begin(ctx: click.Context, by: str) -> None:
    """Freeze routing: requests are registered, replies kept, the directory backed up."""
    row = _call(ctx, "begin", by)
    echo(f"reorganisation {row.id} begun: new requests are registered and kept, replies are "
         "kept; commit or roll back to end it")


@reorg.command("commit")
@click.option("--hold-failing", is_flag=True, help="Hold the cases that fail verification "
              "(and commit the rest) instead of refusing.")
@click.option("--by", default="administrator", help="Who commits it, for the audit trail.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def commit(ctx: click.Context, hold_failing: bool, by: str, as_json: bool) -> None:
    """Apply the new directory and every case's new approver, in one transaction."""
    report = _call(ctx, "commit", by, hold_failing, as_json=as_json)
    if not as_json:
        echo(f"committed: reorganisation {report.reorg_id}")
    _show(report, as_json)


@reorg.command("rollback")
@click.option("--by", default="administrator", help="Who rolls it back, for the audit trail.")
@click.pass_context
def rollback(ctx: click.Context, by: str) -> None:
    """Back to before begin: the directory and every case the commit changed."""
    left = _call(ctx, "rollback", by)
    echo("rolled back")
    for line in left:
        echo(f"  {line}")


@reorg.command("cancel")
@click.option("--by", default="administrator", help="Who cancels it, for the audit trail.")
@click.pass_context
def cancel(ctx: click.Context, by: str) -> None:
    """Drop the planned reorganisation before it begins."""
    row = _call(ctx, "cancel", by)
    echo(f"reorganisation {row.id} cancelled")


@reorg.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """The latest reorganisations: state, times, counts, kept replies and held cases."""
    info = _app(ctx).reorganisations.status()
    if as_json:
        echo(json.dumps(info, ensure_ascii=False, indent=2))
        return
    rows = info["reorganisations"]
    if not rows:
        echo("no reorganisations")
    for r in rows:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r["report"].get("counts", {}).items()))
        echo(f"{r['id']}  {r['state']:<11}  {r['file']}"
             + (f"  effective {r['effective_at']}" if r["effective_at"] else "")
             + (f"  [{counts}]" if counts else "")
             + (f"  kept replies {r['kept_replies']}" if r["kept_replies"] else "")
             + (f"  still being rerouted: {r['rerouting']} case(s)" if r.get("rerouting")
                else "")
             + (f"  held: {', '.join(r['report']['held'])}" if r["report"].get("held")
                else ""))
