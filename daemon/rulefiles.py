"""Rule files that could not be loaded at start, and what stays in force instead.

A broken condition set or workflow template never stops intake: the last good version of
that file (kept in the database) stays in force, the problem is logged once per start
(ERROR) and mailed to the administrator once per file content, and `ringi rules check` exits
1. A daemon under systemd `Restart=on-failure` therefore never loops on a typo.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

    kind: str  # "condition set", "workflow template"
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
