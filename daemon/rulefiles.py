"""Rule files that could not be loaded at start, and what stays in force instead.

A broken case type file, destinations file, condition set or workflow template never stops
intake: the last good version of that file (kept in the database) stays in force, the
problem is logged once per start (ERROR) and mailed to the administrator once per file
content, and `ringi rules check` exits 1. A daemon under systemd `Restart=on-failure`
therefore never loops on a typo.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import inspect, select
from sqlalchemy.exc import SQLAlchemyError

from daemon.store.rulefile_models import RuleFileVersion

if TYPE_CHECKING:
    from daemon.clock import Clock
    from daemon.notify.alerts import AdminAlerts
    from daemon.store.db import Store

log = logging.getLogger(__name__)

# The same broken content is told again at most weekly (at a start), a new content at once.
ALERT_EVERY = timedelta(days=7)


def file_digest(path: Path) -> str:
    """SHA-256 of the file as it is on disk: the alert key changes when the file does."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        return hashlib.sha256(f"unreadable: {exc}".encode()).hexdigest()


@dataclass
class BrokenRule:
    """One rule file refused at load; `in_force` says what applies in its place."""

    kind: str  # "case type", "destinations", "condition set", "workflow template"
    path: str
    errors: list[str]
    digest: str
    in_force: str = ""

    def headline(self) -> str:
        return f"{self.kind} file {self.path} is invalid; {self.in_force or 'not in force'}"


def broken_files(kind: str, errors_by_path: dict[str, list[str]]) -> list[BrokenRule]:
    return [BrokenRule(kind, p, errs, file_digest(Path(p)))
            for p, errs in sorted(errors_by_path.items())]


def report_broken(store: Store, alerts: AdminAlerts, broken: list[BrokenRule]) -> None:
    """Log each refused file once (ERROR) and tell the administrator (key: file + content)."""
    for b in broken:
        log.error("%s: %s", b.headline(), "; ".join(b.errors))
        body = "\n".join([
            f"The {b.kind} file {b.path} could not be loaded when ringi started.",
            f"In force instead: {b.in_force or 'nothing'}.", "", "Problems:",
            *(f"  {e}" for e in b.errors), "",
            "Fix the file, check it with `ringi rules check`, then restart ringi."])
        try:
            with store.transaction() as s:
                alerts.tell(s, f"rule-file:{b.digest}:{b.path}",
                            f"rule file refused: {b.path}", body, every=ALERT_EVERY)
        except Exception:  # a start must not fail because a mail could not be queued
            log.exception("the administrator could not be told about %s", b.path)


T = TypeVar("T")


def remember_good(store: Store, clock: Clock, kind: str, texts: dict[str, str]) -> None:
    """Keep each file's content as loaded at this start (a new row only when it changed),
    for case type and destinations files, read before the database is even migrated."""
    with store.transaction() as s:
        for path, text in sorted(texts.items()):
            digest = hashlib.sha256(text.encode()).hexdigest()
            newest = s.scalar(select(RuleFileVersion.digest).where(
                RuleFileVersion.kind == kind, RuleFileVersion.path == path)
                .order_by(RuleFileVersion.id.desc()).limit(1))
            if newest != digest:
                s.add(RuleFileVersion(kind=kind, path=path, digest=digest, content=text,
                                      loaded_at=clock.now()))


def restore_last_good(store: Store, b: BrokenRule, build: Callable[[str], T | None],
                      what: Callable[[T], str]) -> T | None:
    """The newest stored content of a refused file that `build` still accepts (today's
    case types may have changed since); sets `b.in_force`. A database that cannot be read
    (unreachable) holds nothing and says so; one not migrated yet holds nothing."""
    try:
        with store.transaction() as s:
            migrated = inspect(s.connection()).has_table(RuleFileVersion.__tablename__)
            rows: list[tuple[str, datetime]] = [] if not migrated else [
                (r.content, r.loaded_at) for r in s.scalars(
                    select(RuleFileVersion).where(RuleFileVersion.kind == b.kind,
                                                  RuleFileVersion.path == b.path)
                    .order_by(RuleFileVersion.id.desc()))]
    except SQLAlchemyError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        log.warning("stored versions of %s cannot be read: %s", b.path, first)
        b.in_force = f"nothing: its stored versions cannot be read ({first})"
        return None
    for content, loaded_at in rows:
        found = build(content)
        if found is not None:
            b.in_force = (f"its last good version stays in force: {what(found)}, "
                          f"as loaded {loaded_at:%Y-%m-%d %H:%M}")
            return found
    return None
