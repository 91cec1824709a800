"""What a drop folder's stable input becomes: a stored request, or a directory import."""

from __future__ import annotations

import hashlib
import mimetypes
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from daemon.cases.blobs import BlobStore
from daemon.cases.droprequests import DropRequestHandler, RequestRefused
from daemon.clock import Clock
from daemon.config import DropConfig, DropFolder
from daemon.directory.filerules import FileRules
from daemon.directory.importer import AfterImport, import_directory_data
from daemon.directory.loader import DirectoryFileError, format_for, parse_directory
from daemon.directory.lookup import member
from daemon.intake.dropfolder import signature_key
from daemon.intake.dropsafety import Entry, Refused, display_name, open_bundle, read_exact
from daemon.intake.store import store_inbound
from daemon.parsing.formfile import FORM_SUFFIXES
from daemon.store.db import Store
from daemon.workqueue.queue import WorkQueue

FORM_STEMS = ("form", "request", "申請")


def _extension(name: str) -> str:
    shown = display_name(name)
    return shown.rsplit(".", 1)[-1].strip().lower() if "." in shown else ""


class _Refused(Refused):
    """A request refused at the door: the file gets both languages, the mail one."""

    def __init__(self, cause: RequestRefused) -> None:
        super().__init__(cause.both())
        self.form = cause.form
        self.cause = cause


class RequestTaker:
    def __init__(self, folder: DropFolder, cfg: DropConfig, queue: WorkQueue,
                 handler: DropRequestHandler, blobs: BlobStore,
                 on_stored: Callable[[], None] | None = None,
                 blocked_extensions: Iterable[str] = ()) -> None:
        self.folder = folder
        self.blocked = {b.lower().lstrip(".") for b in blocked_extensions}
        self.label = folder.name
        self.cfg = cfg
        self.queue = queue
        self.handler = handler
        self.blobs = blobs
        self.on_stored = on_stored or (lambda: None)

    def _form_of(self, entry: Entry, names: list[str]) -> tuple[str, list[str]]:
        if not entry.is_bundle:
            if Path(entry.name).suffix.lower() not in FORM_SUFFIXES:
                raise Refused(f"{display_name(entry.name)} is not a form file; use "
                              f"{', '.join(sorted(FORM_SUFFIXES))}, or a folder with one")
            return entry.name, []
        blocked = [n for n in names if _extension(n) in self.blocked]
        if blocked:  # refused whole: a request with a document missing is not the request
            raise Refused(f"{display_name(blocked[0])}: files of type .{_extension(blocked[0])} "
                          "are not accepted; remove it and put the folder back")
        forms = [n for n in names
                 if Path(n).suffix.lower() in FORM_SUFFIXES and Path(n).stem.lower() in FORM_STEMS]
        if len(forms) != 1:
            found = "no form file" if not forms else f"{len(forms)} form files"
            raise Refused(f"the folder has {found}; it needs exactly one file named "
                          "form.toml, form.json or form.yaml (or request.*) plus attachments")
        return forms[0], [n for n in names if n != forms[0]]

    def take(self, entry: Entry) -> str | None:
        fd, names = open_bundle(entry, self.cfg.max_bytes) if entry.is_bundle \
            else (entry.dir_fd, [])
        try:
            return self._take(entry, fd, names)
        finally:
            if entry.is_bundle:
                os.close(fd)

    def _take(self, entry: Entry, fd: int, names: list[str]) -> str | None:
        form_name, attachments = self._form_of(entry, names)
        form_bytes = read_exact(fd, form_name, self.cfg.max_bytes,
                                None if entry.is_bundle else entry.signature)
        with self.queue.store.transaction() as s:
            try:
                who = self.handler.identify(s, self.folder, entry.owner)
                self.handler.check(s, who, form_bytes, Path(form_name).suffix,
                                   display_name(entry.name))
            except RequestRefused as exc:
                raise _Refused(exc) from None
            person = who.id
        documents = []
        for name in attachments:
            data = read_exact(fd, name, self.cfg.max_bytes)
            documents.append({
                "filename": display_name(name),
                "content_type": mimetypes.guess_type(name)[0] or "application/octet-stream",
                "size": len(data),
                "sha256": self.blobs.put(data),
            })
        key = f"drop:{self.folder.name}:{display_name(entry.name)}:{signature_key(entry)}:" \
              f"{hashlib.sha256(form_bytes).hexdigest()[:16]}"
        stored = store_inbound(
            self.queue, "drop", f"drop:{self.folder.name}", [], form_bytes, source_key=key,
            meta={"folder": self.folder.name, "entry": display_name(entry.name),
                  "person": person, "suffix": Path(form_name).suffix.lower(),
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

    def __init__(self, store: Store, clock: Clock, max_bytes: int,
                 after: AfterImport | None = None, rules: FileRules | None = None) -> None:
        self.store = store
        self.clock = clock
        self.max_bytes = max_bytes
        self.after = after  # waiting cases re-resolved in the import's transaction
        self.rules = rules  # the relation rules the file's relations must pass

    def take(self, entry: Entry) -> str | None:
        if entry.is_bundle:
            raise Refused("put directory files directly in the admin folder, not in a folder")
        try:
            fmt = format_for(entry.path)
            data = read_exact(entry.dir_fd, entry.name, self.max_bytes, entry.signature)
            parsed = parse_directory(data, fmt, display_name(entry.name))
            diff = import_directory_data(self.store, parsed, hashlib.sha256(data).hexdigest(),
                                         f"admin drop: {display_name(entry.name)}",
                                         self.clock.now(), self.after, self.rules)
        except DirectoryFileError as exc:
            raise Refused("\n".join(exc.errors)) from None
        return "\n".join(diff.lines()) + "\n"

    def refused(self, name: str, owner_uid: int | None, reason: str, form: str,
                cause: Exception | None = None) -> None:
        """Errors are in NAME.error.txt and the log; there is no one person to mail."""
