"""Partners as data (SPEC 8): files under rules/partners/ synced on start, or added and
re-keyed by command; every change is audited.

Keys are a history: a new key retires the old one (`retired_at`) and never deletes it, so a
delivery made last year can still be matched to the key it was encrypted for. A retired key
never comes back by itself: a partner file that still names one (say, a file edited after a
`rotate-key`) keeps the key in force and says so; only `rotate-key` can bring it back.

Writers that may run concurrently (several daemons on one PostgreSQL) should lock the audit
head first (`AuditTrail.lock`), as the app and the CLI do, so partner changes queue on the
same lock as every other audited change.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.clock import Clock
from daemon.publication.keys import short
from daemon.publication.partnerfile import (
    PartnerError,
    PartnerSpec,
    load_partner_file,
    read_public_key,
)
from daemon.store.publication_models import Partner, PartnerKey

__all__ = ["KeyView", "PartnerError", "PartnerRegistry", "PartnerSpec", "PartnerView"]

Audit = Callable[[Session, str, str | None, str, dict[str, Any]], None]
# Columns copied from a PartnerSpec as they are (the key is kept apart, as a history).
FIELDS = ("title", "emails", "locale", "folder", "folder_owner", "folder_group", "folder_mode",
          "case_types", "document_classes", "max_bytes", "volume_bytes", "retention_days")


@dataclass(frozen=True)
class KeyView:
    fingerprint: str
    bits: int
    public_key: str
    added_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True)
class PartnerView:
    """A partner as publication needs it: its settings and the key in force."""

    name: str
    title: str
    emails: tuple[str, ...]
    locale: str
    folder: Path
    folder_owner: str
    folder_group: str
    folder_mode: int
    case_types: tuple[str, ...]
    document_classes: tuple[str, ...]  # empty: any class
    max_bytes: int
    volume_bytes: int
    retention_days: int
    active: bool
    origin: str
    source: str
    created_at: datetime
    updated_at: datetime
    public_key: str  # PEM of the key in force
    fingerprint: str
    bits: int
    keys: tuple[KeyView, ...]  # oldest first, the one in force last
    id: int = 0

    def may_receive(self, case_type: str, document_class: str | None = None) -> bool:
        """The partner's conditions on what it may be sent (size is checked on building)."""
        if not self.active or case_type not in self.case_types:
            return False
        return not self.document_classes or document_class in self.document_classes


def _folder_key(folder: str) -> str:
    return os.path.normpath(os.path.abspath(folder))


def _stored(spec: PartnerSpec, field: str) -> Any:
    value = getattr(spec, field)
    return list(value) if isinstance(value, tuple) else value


class PartnerRegistry:
    def __init__(self, clock: Clock, audit: Audit | None = None,
                 case_types: Collection[str] | None = None) -> None:
        self.clock = clock
        self.audit = audit
        self.case_types = case_types  # None: case type names are not checked

    def load_file(self, path: Path) -> PartnerSpec:
        return load_partner_file(path, self.case_types)

    # --- reading ---------------------------------------------------------------------------

    def by_id(self, s: Session, partner_id: int) -> PartnerView | None:
        row = s.get(Partner, partner_id)
        return None if row is None else self._view(s, row)

    def get(self, s: Session, name: str) -> PartnerView | None:
        row = s.scalar(select(Partner).where(Partner.name == name))
        return None if row is None else self._view(s, row)

    def all(self, s: Session) -> list[PartnerView]:
        return [self._view(s, row) for row in s.scalars(select(Partner).order_by(Partner.name))]

    def _keys(self, s: Session, partner_id: int) -> list[PartnerKey]:
        return list(s.scalars(select(PartnerKey).where(PartnerKey.partner_id == partner_id)
                              .order_by(PartnerKey.id)))

    def _current(self, s: Session, partner_id: int) -> PartnerKey:
        live = [k for k in self._keys(s, partner_id) if k.retired_at is None]
        return live[-1]

    def _view(self, s: Session, row: Partner) -> PartnerView:
        keys = self._keys(s, row.id)  # the one in force is the newest row
        live = self._current(s, row.id)
        return PartnerView(
            row.name, row.title, tuple(row.emails), row.locale, Path(row.folder),
            row.folder_owner, row.folder_group, row.folder_mode, tuple(row.case_types),
            tuple(row.document_classes), row.max_bytes, row.volume_bytes, row.retention_days,
            row.active, row.origin, row.source, row.created_at, row.updated_at,
            live.public_key, live.fingerprint, live.bits,
            tuple(KeyView(k.fingerprint, k.bits, k.public_key, k.added_at, k.retired_at)
                  for k in keys), row.id)

    # --- writing ---------------------------------------------------------------------------

    def add(self, s: Session, spec: PartnerSpec, origin: str = "cli",
            actor: str | None = None) -> PartnerView:
        """A new partner; an existing name is refused (edit its file or rotate its key)."""
        row = s.scalar(select(Partner).where(Partner.name == spec.name))
        if row is not None:
            raise PartnerError([
                f"{spec.source}: name: partner {spec.name!r} already exists (from {row.source}); "
                "edit that file, or use `ringi partners rotate-key` for a new key"])
        self._check_folder(s, spec, ignore=set())
        return self._view(s, self._create(s, spec, origin, actor))

    def rotate_key(self, s: Session, name: str, pem: str, actor: str | None,
                   source: str = "new key") -> tuple[str, str]:
        """Retire the key in force and put `pem` in its place; returns (old, new) fingerprint."""
        row = s.scalar(select(Partner).where(Partner.name == name))
        if row is None:
            raise PartnerError([f"no partner {name!r}"])
        try:
            info = read_public_key(pem)
        except ValueError as exc:
            raise PartnerError([f"{source}: {exc}"]) from None
        old = self._current(s, row.id)
        if old.fingerprint == info.fingerprint:
            raise PartnerError([f"{source}: this is already {name}'s key in force "
                                f"({info.fingerprint})"])
        now = self.clock.now()
        old.retired_at = now
        s.add(PartnerKey(partner_id=row.id, public_key=info.pem, fingerprint=info.fingerprint,
                         bits=info.bits, added_at=now, retired_at=None))
        row.updated_at = now
        s.flush()
        self._audit(s, "partner key rotated", actor, name, {
            "old": old.fingerprint, "new": info.fingerprint, "bits": info.bits,
            "source": source})
        return old.fingerprint, info.fingerprint

    def check_files(self, directory: Path) -> list[PartnerSpec]:
        """Every partner file in `directory`, validated together (names and folders must be
        distinct); PartnerError lists every problem. Touches no database."""
        specs: dict[str, PartnerSpec] = {}
        folders: dict[str, str] = {}
        errors: list[str] = []
        for path in sorted(directory.glob("*.toml")) if directory.is_dir() else []:
            try:
                spec = self.load_file(path)
            except PartnerError as exc:
                errors.extend(exc.errors)
                continue
            if spec.name in specs:
                errors.append(f"{path}: name: partner {spec.name!r} is also defined by "
                              f"{specs[spec.name].source}")
                continue
            if (other := folders.get(_folder_key(spec.folder))) is not None:
                errors.append(f"{path}: folder: {spec.folder} is also {other}'s folder; each "
                              "partner needs its own")
            specs[spec.name] = spec
            folders[_folder_key(spec.folder)] = spec.name
        if errors:
            raise PartnerError(errors)
        return list(specs.values())

    def sync_files(self, s: Session, directory: Path) -> list[str]:
        """Apply new and changed partner files; deactivate partners whose file is gone.
        An unchanged file is not applied again. Returns one line per change."""
        specs = {spec.name: spec for spec in self.check_files(directory)}
        # Partners from files are all either in `specs` or about to be deactivated: only
        # those added by command can hold a folder a file wants.
        from_files = set(s.scalars(select(Partner.name).where(Partner.origin == "file")))
        errors: list[str] = []
        for spec in specs.values():
            try:
                self._check_folder(s, spec, ignore=set(specs) | from_files)
            except PartnerError as exc:
                errors.extend(exc.errors)
        if errors:
            raise PartnerError(errors)
        changes: list[str] = []
        for spec in specs.values():
            row = s.scalar(select(Partner).where(Partner.name == spec.name))
            if row is None:
                self._create(s, spec, "file", None)
                changes.append(f"partner {spec.name}: added from {spec.source} "
                               f"(key {short(spec.key.fingerprint)})")
            elif row.digest != spec.digest or not row.active or row.origin != "file":
                changes.extend(self._update(s, row, spec))
        for row in s.scalars(select(Partner).where(Partner.origin == "file", Partner.active)):
            if row.name not in specs:
                row.active, row.updated_at = False, self.clock.now()
                self._audit(s, "partner deactivated", None, row.name, {"source": row.source})
                changes.append(f"partner {row.name}: deactivated (its file {row.source} is gone)")
        return changes

    def _check_folder(self, s: Session, spec: PartnerSpec, ignore: set[str]) -> None:
        for other in s.scalars(select(Partner).where(Partner.name != spec.name,
                                                     Partner.active)):
            if other.name not in ignore and _folder_key(other.folder) == _folder_key(spec.folder):
                raise PartnerError([f"{spec.source}: folder: {spec.folder} is already "
                                    f"{other.name}'s folder; each partner needs its own"])

    def _create(self, s: Session, spec: PartnerSpec, origin: str, actor: str | None) -> Partner:
        now = self.clock.now()
        row = Partner(name=spec.name, active=True, origin=origin, source=spec.source,
                      digest=spec.digest, created_at=now, updated_at=now,
                      **{f: _stored(spec, f) for f in FIELDS})
        s.add(row)
        s.flush()
        k = spec.key
        s.add(PartnerKey(partner_id=row.id, public_key=k.pem, fingerprint=k.fingerprint,
                         bits=k.bits, added_at=now, retired_at=None))
        s.flush()
        self._audit(s, "partner added", actor, spec.name, {
            "origin": origin, "source": spec.source, "key": k.fingerprint, "bits": k.bits,
            "emails": list(spec.emails), "folder": spec.folder,
            "case_types": list(spec.case_types)})
        return row

    def _update(self, s: Session, row: Partner, spec: PartnerSpec) -> list[str]:
        """Take a changed file over the stored partner (fields, and the key if it is new)."""
        now = self.clock.now()
        changed = [f for f in FIELDS if getattr(row, f) != _stored(spec, f)]
        for f in changed:
            setattr(row, f, _stored(spec, f))
        lines: list[str] = []
        data: dict[str, Any] = {"source": spec.source, "changed": changed}
        current = self._current(s, row.id)
        new_fp = spec.key.fingerprint
        retired = {k.fingerprint: k.retired_at for k in self._keys(s, row.id) if k.retired_at}
        if new_fp != current.fingerprint and new_fp in retired:
            lines.append(
                f"partner {row.name}: {spec.source} names key {short(new_fp)}, retired on "
                f"{retired[new_fp]:%Y-%m-%d}; key {short(current.fingerprint)} stays in force "
                "(put the new key in the file, or use `ringi partners rotate-key`)")
            data["kept_key"] = current.fingerprint
        elif new_fp != current.fingerprint:
            current.retired_at = now
            s.add(PartnerKey(partner_id=row.id, public_key=spec.key.pem, fingerprint=new_fp,
                             bits=spec.key.bits, added_at=now, retired_at=None))
            lines.append(f"partner {row.name}: key {short(current.fingerprint)} retired, key "
                         f"{short(new_fp)} in force (from {spec.source})")
            data.update(old_key=current.fingerprint, new_key=new_fp)
        notes = [f"updated from {spec.source} ({', '.join(changed)})"] if changed else []
        if not row.active:
            notes.append(f"active again (its file {spec.source} is back)")
        if row.origin != "file":
            notes.append(f"now follows its file {spec.source}")
        if notes:
            lines.insert(0, f"partner {row.name}: {'; '.join(notes)}")
        row.active, row.origin, row.source, row.digest = True, "file", spec.source, spec.digest
        row.updated_at = now
        s.flush()
        self._audit(s, "partner updated", None, row.name, data)
        return lines

    def _audit(self, s: Session, kind: str, actor: str | None, name: str,
               data: dict[str, Any]) -> None:
        if self.audit is not None:
            self.audit(s, kind, actor, f"partner {name}", data)
