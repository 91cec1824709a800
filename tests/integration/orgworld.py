"""What the tests of directory changes, send-backs, kept rule files and timers each wrote
again around `start_world`: the sample organisation and edits of it, a world that stops
however its test ends, filing a release, deciding an ask, and reading a case's steps and
history.

The world itself (`World`, `start_world`) stays in test_outcomes, where it was first made.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select

from daemon.store.models import Case, CaseStep
from tests.integration.test_outcomes import SUZUKI, TANAKA, World, number_of, start_world
from tests.support import ROOT, Captured, CapturingRelay

ORG = (ROOT / "samples" / "organisation.toml").read_text()
ENG_HEAD = '[[roles]]\nunit = "eng"\nrole = "head"\nperson = "suzuki"\n'
RELEASE = "Type: design_release\nDocument number: D-1\nRevision: A\nSummary: first release\n"


@contextmanager
def running_world(tmp_path: Path, db_url: str, relay: CapturingRelay,
                  rules: Path | None = None, **sections: Any) -> Iterator[World]:
    """`start_world`, stopped when the block ends, passed or failed: a daemon left running
    would keep its port and runner threads into the next test."""
    w = start_world(tmp_path, db_url, relay, rules=rules, **sections)
    try:
        yield w
    finally:
        w.app.stop()


def org_file(tmp_path: Path, text: str, name: str = "org.toml") -> Path:
    """A directory file as an administrator would hand it to ringi (import or plan)."""
    path = tmp_path / name
    path.write_text(text)
    return path


def file_release(w: World) -> tuple[str, Captured]:
    """Tanaka files design release D-1: its case number and the ask to Suzuki, head of
    Engineering (Tanaka's acknowledgement is taken)."""
    w.send(TANAKA, "Release", RELEASE)
    number = number_of(w.one(TANAKA))
    return number, w.one(SUZUKI)


def decide(w: World, mail: Captured, who: str, text: str) -> Captured:
    """`who` answers the ask `mail`; ringi's confirmation to them is taken, so the next look
    at their mails sees what follows."""
    w.reply(mail, who, text)
    return w.one(who)


def case_steps(w: World, number: str) -> list[CaseStep]:
    """Every step of the case, in the order they were asked."""
    with w.app.store.transaction() as s:
        return list(s.scalars(select(CaseStep).join(Case, Case.id == CaseStep.case_id)
                              .where(Case.number == number).order_by(CaseStep.seq)))


def event_kinds(w: World, number: str) -> list[str]:
    """The kinds of the case's history entries, oldest first."""
    return [kind for kind, _ in w.events(number)]
