"""`ringi partners`: partner management (SPEC 11: add, key rotation) and the stamp key.

These commands need the store, the case type names (to check a partner's case_types) and the
audit trail, not the whole daemon: they work while it runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import click

from daemon.audit.trail import AuditTrail
from daemon.cases.casetypes import CaseTypeError, load_case_types
from daemon.cli.common import EXIT_USAGE, cli_clock, cli_config
from daemon.cli.output import echo
from daemon.publication.partnercheck import check_target, summary, targets
from daemon.publication.partners import PartnerError, PartnerRegistry, PartnerView
from daemon.publication.stamp import StampKey, StampKeyError
from daemon.security.secrets import InsecureSecretError
from daemon.store.db import Store


def _fail(lines: list[str], headline: str | None = None, code: int = EXIT_USAGE) -> NoReturn:
    if headline:
        echo(f"ringi: {headline}", err=True)
    for line in lines:
        echo(f"  {line}" if headline else f"ringi: {line}", err=True)
    sys.exit(code)


@contextmanager
def _registry(ctx: click.Context) -> Iterator[tuple[Store, PartnerRegistry, AuditTrail]]:
    cfg = cli_config(ctx)
    try:
        types = {t.name for t in load_case_types(cfg.paths.rules / "casetypes").all()}
    except CaseTypeError as exc:
        _fail(exc.errors, "case types are invalid")
    store = Store(cfg.database_url)
    try:
        store.migrate()
        clock = cli_clock(ctx, cfg)
        trail = AuditTrail(clock)
        yield store, PartnerRegistry(clock, trail.append, types), trail
    finally:
        store.dispose()


def _when(at: object) -> str:
    return f"{at:%Y-%m-%d %H:%M}"


@click.group()
def partners() -> None:
    """Partners: outside companies that receive stamped, encrypted deliveries."""


@partners.command("add")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--by", "by", default=None, help="Person id recorded as who added it.")
@click.pass_context
def partners_add(ctx: click.Context, file: Path, by: str | None) -> None:
    """Add the partner described by FILE (the partner file format; see docs/administrators.md)."""
    with _registry(ctx) as (store, registry, trail):
        try:
            spec = registry.load_file(file)
            with store.transaction() as s:
                trail.lock(s)
                view = registry.add(s, spec, origin="cli", actor=by)
        except PartnerError as exc:
            _fail(exc.errors, f"{file} refused, nothing added:")
    echo(f"partner {view.name} added: key RSA-{view.bits} sha256 {view.fingerprint}")


@partners.command("list")
@click.pass_context
def partners_list(ctx: click.Context) -> None:
    """One line per partner: name, state, key fingerprint, what it receives."""
    with _registry(ctx) as (store, registry, _), store.transaction() as s:
        views = registry.all(s)
    for p in views:
        state = "active" if p.active else "inactive"
        echo(f"{p.name:<24} {state:<8} key {p.fingerprint[:16]}  "
                   f"{', '.join(p.case_types)}  ({p.origin}) {p.title}")
    if not views:
        echo("no partners")


@partners.command("show")
@click.argument("name")
@click.pass_context
def partners_show(ctx: click.Context, name: str) -> None:
    """Everything about NAME, with its key history."""
    with _registry(ctx) as (store, registry, _), store.transaction() as s:
        view = registry.get(s, name)
    if view is None:
        _fail([f"no partner {name}"], code=1)
    for line in describe(view):
        echo(line)


def describe(p: PartnerView) -> list[str]:
    mib = 1024 * 1024
    return [
        f"{p.name}  {p.title}",
        f"  state:            {'active' if p.active else 'inactive'}",
        f"  origin:           {p.origin} ({p.source})",
        f"  emails:           {', '.join(p.emails)}",
        f"  locale:           {p.locale}",
        f"  folder:           {p.folder} (owner {p.folder_owner}, group {p.folder_group}, "
        f"mode {p.folder_mode:04o})",
        f"  case types:       {', '.join(p.case_types)}",
        f"  document classes: {', '.join(p.document_classes) or 'any'}",
        f"  max delivery:     {p.max_bytes // mib} MB",
        f"  volume size:      {p.volume_bytes // mib} MB",
        f"  retention:        {p.retention_days} days",
        f"  added:            {_when(p.created_at)}; updated {_when(p.updated_at)}",
        f"  key in force:     RSA-{p.bits} sha256 {p.fingerprint}",
        "  key history:",
        *(f"    {k.fingerprint}  RSA-{k.bits}  added {_when(k.added_at)}  "
          + (f"retired {_when(k.retired_at)}" if k.retired_at else "in force")
          for k in p.keys),
    ]


@partners.command("rotate-key")
@click.argument("name")
@click.argument("key_file", metavar="NEW_KEY.pem",
                type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--by", "by", default=None, help="Person id recorded as who rotated it.")
@click.pass_context
def partners_rotate_key(ctx: click.Context, name: str, key_file: Path, by: str | None) -> None:
    """Put NEW_KEY.pem in force for NAME; the old key is kept in the history, retired."""
    pem = key_file.read_text(encoding="ascii", errors="replace")
    with _registry(ctx) as (store, registry, trail):
        try:
            with store.transaction() as s:
                trail.lock(s)
                old, new = registry.rotate_key(s, name, pem, by, source=str(key_file))
        except PartnerError as exc:
            _fail(exc.errors, "key not changed:")
    echo(f"partner {name}: key {old} retired")
    echo(f"partner {name}: key {new} in force")


@partners.command("check")
@click.argument("name", required=False)
@click.pass_context
def partners_check(ctx: click.Context, name: str | None) -> None:
    """Can THIS process deliver to every partner (or NAME)? Checks each key, each folder
    (no link on the way, owner, group, mode) and writes a probe entry there; prints what to
    fix. Exit 0 when all is well, 1 otherwise. Run it as the service's user, e.g.
    `sudo -u ringi ringi partners check` (the unit adds SupplementaryGroups= on top)."""
    cfg = cli_config(ctx)
    with _registry(ctx) as (store, registry, _), store.transaction() as s:
        try:
            found = targets(s, registry, cfg.partners_dir)
        except PartnerError as exc:
            _fail(exc.errors, "partner files are invalid:", code=1)
    if name is not None:
        found = [t for t in found if t.name == name]
        if not found:
            _fail([f"no active partner {name}"], code=1)
    if not found:
        echo("no partners")
    if os.geteuid() == 0:
        echo("note: run as root, this shows what root can do; the service runs as its own "
             "user: run the check as that user with its groups (docs/operations.md, "
             "\"Partner folders\")", err=True)
    reports = [check_target(t) for t in found]
    for r in reports:
        echo(f"{r.name}: {'ok' if not r.problems else 'PROBLEMS'}  ({r.source})")
        for line in r.problems:
            echo(f"  problem: {line}")
        for line in r.notes:
            echo(f"  note: {line}")
    if (fix := summary(reports)) is not None:
        echo(fix)
    sys.exit(1 if any(r.problems for r in reports) else 0)


@partners.command("stamp-key")
@click.pass_context
def partners_stamp_key(ctx: click.Context) -> None:
    """Print the company stamp's public key (PEM) for partners to check stamps with."""
    cfg = cli_config(ctx)
    try:
        key = StampKey.load_or_create(cfg.stamp_key_path)
    except (InsecureSecretError, StampKeyError) as exc:
        _fail([str(exc)], "the stamp key is refused:")
    echo(key.public_pem(), nl=False)
    echo(f"stamp key {key.algorithm}, sha256 {key.fingerprint}", err=True)
