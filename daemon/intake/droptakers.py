"""What a drop folder's stable input becomes: a stored request, or a directory import."""

from __future__ import annotations

import hashlib
import mimetypes
import os
from collections.abc import Callable
from pathlib import Path

from daemon.cases.blobs import BlobStore
from daemon.cases.droprequests import DropRequestHandler, RequestRefused
from daemon.clock import Clock
from daemon.config import DropConfig, DropFolder
from daemon.directory.importer import import_directory_data
from daemon.directory.loader import DirectoryFileError, format_for, parse_directory
from daemon.directory.lookup import member
from daemon.intake.dropfolder import signature_key
from daemon.intake.dropsafety import Entry, Refused, display_name, ignored, read_exact
from daemon.intake.store import store_inbound
from daemon.parsing.formfile import FORM_SUFFIXES
from daemon.store.db import Store
from daemon.workqueue.queue import WorkQueue

FORM_STEMS = ("form", "request", "申請")


class _Refused(Refused):
    """A request refused at the door: the file gets both languages, the mail one."""

    def __init__(self, cause: RequestRefused) -> None:
        super().__init__(cause.both())
        self.form = cause.form
        self.cause = cause


class RequestTaker:
    def __init__(self, folder: DropFolder, cfg: DropConfig, queue: WorkQueue,
                 handler: DropRequestHandler, blobs: BlobStore,
                 on_stored: Callable[[], None] | None = None) -> None:
        self.folder = folder
        self.label = folder.name
        self.cfg = cfg
        self.queue = queue
        self.handler = handler
        self.blobs = blobs
        self.on_stored = on_stored or (lambda: None)

    def _form_of(self, entry: Entry) -> tuple[Path, list[Path]]:
        if not entry.is_bundle:
            if Path(entry.name).suffix.lower() not in FORM_SUFFIXES:
                raise Refused(f"{display_name(entry.name)} is not a form file; use "
                              f"{', '.join(sorted(FORM_SUFFIXES))}, or a folder with one")
            return entry.path, []
        files = sorted(p for p in entry.path.iterdir() if not ignored(p.name))
        forms = [p for p in files
                 if p.suffix.lower() in FORM_SUFFIXES and p.stem.lower() in FORM_STEMS]
        if len(forms) != 1:
            found = "no form file" if not forms else f"{len(forms)} form files"
            raise Refused(f"the folder has {found}; it needs exactly one file named "
                          "form.toml, form.json or form.yaml (or request.*) plus attachments")
        return forms[0], [p for p in files if p != forms[0]]

    def take(self, entry: Entry) -> str | None:
        form_path, attachments = self._form_of(entry)
        form_bytes = read_exact(form_path, self.cfg.max_bytes)
        owner = os.lstat(entry.path).st_uid
        with self.queue.store.transaction() as s:
            try:
                who = self.handler.identify(s, self.folder, owner)
                self.handler.check(s, who, form_bytes, form_path.suffix, entry.name)
            except RequestRefused as exc:
                raise _Refused(exc) from None
            person = who.id
        documents = []
        for path in attachments:
            data = read_exact(path, self.cfg.max_bytes)
            documents.append({
                "filename": display_name(path.name),
                "content_type": mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                "size": len(data),
                "sha256": self.blobs.put(data),
            })
        key = f"drop:{self.folder.name}:{display_name(entry.name)}:{signature_key(entry)}:" \
              f"{hashlib.sha256(form_bytes).hexdigest()[:16]}"
        stored = store_inbound(
            self.queue, "drop", f"drop:{self.folder.name}", [], form_bytes, source_key=key,
            meta={"folder": self.folder.name, "entry": display_name(entry.name),
                  "person": person, "suffix": form_path.suffix.lower(),
                  "documents": documents},
        )
        if stored.new:
            self.on_stored()
        return None

    def refused(self, name: str, owner_uid: int | None, reason: str, form: str,
                cause: Exception | None = None) -> None:
        with self.queue.store.transaction() as s:
            who = None
            if self.folder.person is not None:
                who = member(s, self.folder.person)
            elif owner_uid is not None:
                try:
                    who = self.handler.identify(s, self.folder, owner_uid)
                except RequestRefused as exc:
                    who = exc.person
            if who is not None and isinstance(cause, _Refused):
                reason = cause.cause.for_locale(who.locale)
            self.handler.notify_refused(s, who, name, self.folder.name, reason, form)


class DirectoryTaker:
    """The admin folder: a dropped directory file is imported like the CLI does it."""

    label = "admin"

    def __init__(self, store: Store, clock: Clock, max_bytes: int) -> None:
        self.store = store
        self.clock = clock
        self.max_bytes = max_bytes

    def take(self, entry: Entry) -> str | None:
        if entry.is_bundle:
            raise Refused("put directory files directly in the admin folder, not in a folder")
        try:
            fmt = format_for(entry.path)
            data = read_exact(entry.path, self.max_bytes)
            parsed = parse_directory(data, fmt, display_name(entry.name))
        except DirectoryFileError as exc:
            raise Refused("\n".join(exc.errors)) from None
        diff = import_directory_data(self.store, parsed, hashlib.sha256(data).hexdigest(),
                                     f"admin drop: {display_name(entry.name)}",
                                     self.clock.now())
        return "\n".join(diff.lines()) + "\n"

    def refused(self, name: str, owner_uid: int | None, reason: str, form: str,
                cause: Exception | None = None) -> None:
        """Errors are in NAME.error.txt and the log; there is no one person to mail."""
