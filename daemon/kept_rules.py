"""Case types and destinations at start: a refused file leaves its last good version in force.

They are read before the database is migrated (every other rule file is checked against the
case types), so the stored versions are read tolerantly here and recorded by App.prepare
once the schema is current (daemon.rulefiles.remember_good).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from daemon.cases.casetypes import (
    CaseType,
    CaseTypeRegistry,
    case_type_from_text,
    clashes,
    read_case_type_files,
)
from daemon.execution.destinations import DestinationError, Destinations
from daemon.rulefiles import BrokenRule, broken_files, restore_last_good
from daemon.store.db import Store

CASE_TYPE = "case type"
DESTINATIONS = "destinations"


def case_types_at_start(store: Store, directory: Path,
                        ) -> tuple[CaseTypeRegistry, list[BrokenRule], dict[str, str]]:
    """The case types in force, the refused files (each saying what applies instead) and
    the text of each good file. A file that never loaded is not offered: a request naming
    its type is answered like any unknown type."""
    types, bad, texts = read_case_type_files(directory)
    broken = broken_files(CASE_TYPE, bad)
    for b in broken:
        def build(text: str, path: str = b.path) -> CaseType | None:
            found, errors = case_type_from_text(Path(path), text)
            return None if errors or clashes(types, found) else found

        kept = restore_last_good(store, b, build, lambda ct: f"case type {ct.name}")
        if kept is not None:
            types.append(kept)
        elif not b.in_force:
            b.in_force = ("no good version is stored: the case type it defines is not offered "
                          "(a request naming it is answered as an unknown type)")
    return CaseTypeRegistry(types), broken, texts


def destinations_at_start(store: Store, path: Path,
                          load: Callable[[str | None], Destinations],
                          ) -> tuple[Destinations, list[BrokenRule], dict[str, str]]:
    """The destinations in force; `load(None)` reads the file, `load(text)` a stored
    version. With none ever good, no destination is in force: an approved case that would
    be executed is recorded as not executed (no destination takes it), and an execution
    request already scheduled fails when it is due (the requester and administrator are
    told, daemon.execution.sender)."""
    try:
        found = load(None)
    except DestinationError as exc:
        broken = broken_files(DESTINATIONS, {str(path): exc.errors})

        def build(text: str) -> Destinations | None:
            try:
                return load(text)
            except DestinationError:
                return None

        kept = restore_last_good(store, broken[0], build, lambda d: "destinations "
                                 + (", ".join(x.name for x in d.all()) or "none"))
        if not broken[0].in_force:
            broken[0].in_force = ("no good version is stored: no destination is in force "
                                  "(approved cases are recorded as not executed; execution "
                                  "requests already scheduled fail, the requester and the "
                                  "administrator are told)")
        return kept or Destinations(source=str(path)), broken, {}
    return found, [], ({str(path): path.read_text(encoding="utf-8")} if path.is_file()
                       else {})
