"""Drop-folder channel: rescans are the truth, watchdog events only make them come sooner.

An input is taken once it has stopped changing for `stable_seconds`, stored durably, and
only then moved to processed/. A refused input moves to rejected/ with NAME.error.txt.

Nothing may loop and nothing may flood the log, whatever sits in the folder: every input
gets one try and ends in processed/ or rejected/ (an unexpected error rejects it with a
reason too); only an unavailable store (or a process out of descriptors or memory) leaves
inputs where they are, retried at the rescan pace. A folder whose processed/ or rejected/
cannot be used is disabled with one ERROR and one mail to the administrator, looked at
again every `RETRY_UNUSABLE` (or ten rescans, whichever is longer) and resumes by itself
when fixed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from daemon.clock import Clock
from daemon.intake.droplog import QuietLog, error_text
from daemon.intake.dropsafety import (
    Entry,
    OpenFolder,
    Refused,
    Unsettled,
    Unusable,
    display_name,
    examine,
    ignored,
    open_folder,
    unique_target,
    unsafe_name,
    write_atomic,
)

if TYPE_CHECKING:
    from daemon.notify.alerts import AdminAlerts
    from daemon.store.db import Store

log = logging.getLogger(__name__)

RETRY_UNUSABLE = timedelta(minutes=5)
# A bundle that still holds a temporary, lock or hidden file unchanged for this long (or
# ten times stable_seconds, if longer) was abandoned by its writer: refused whole.
ABANDONED = timedelta(hours=1)
# The store is down, its disk full, or the process short of resources: not the input's
# fault, so the input stays and is tried again at the next rescan.
TRANSIENT = (OperationalError, InterfaceError, DisconnectionError, TimeoutError, MemoryError)
TRANSIENT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN,
                              errno.EINTR, errno.ENOSPC, errno.EDQUOT, errno.EROFS})


class Taker(Protocol):
    """Decides what one stable input is; raises Refused to send it to rejected/."""

    label: str

    def take(self, entry: Entry) -> str | None:
        """Store the input durably. Returns text for NAME.result.txt, if any."""

    def refused(self, name: str, owner_uid: int | None, reason: str, form: str,
                cause: Exception | None = None) -> None:
        """Tell the person concerned, where there is one."""


class DropScanner:
    def __init__(self, path: Path, taker: Taker, clock: Clock, stable_seconds: float,
                 rescan_seconds: float, max_bytes: int, store: Store | None = None,
                 alerts: AdminAlerts | None = None) -> None:
        self.path = path
        self.taker = taker
        self.clock = clock
        self.stable = timedelta(seconds=stable_seconds)
        self.rescan_seconds = rescan_seconds
        self.max_bytes = max_bytes
        self.store = store
        self.alerts = alerts
        self.abandoned = max(ABANDONED, self.stable * 10)
        self.retry_unusable = max(RETRY_UNUSABLE, timedelta(seconds=rescan_seconds * 10))
        self.seen: dict[str, tuple[tuple[object, ...], Any]] = {}
        self.stuck: dict[str, datetime] = {}  # could not be moved: try again at this time
        self.disabled: str = ""  # why the folder cannot be used ("" when it can)
        self.retry_at: datetime | None = None
        self.quiet = QuietLog(log, clock, timedelta(seconds=rescan_seconds))
        self.wakeup = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"drop-{path.name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.wakeup.set()
        if self.thread.is_alive():
            self.thread.join(10)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                pending = self.scan()
            except Exception:  # a bug: say so once per interval, never spin
                self.quiet.exception("scan", "drop folder %s: scan failed; will retry",
                                     self.path)
                pending = 0
            wait = max(self.stable.total_seconds() / 2, 0.1) if pending else self.rescan_seconds
            self.wakeup.wait(wait)
            self.wakeup.clear()

    def scan(self) -> int:
        """One pass over the folder. Returns how many inputs are still settling."""
        now = self.clock.now()
        self.quiet.forget_old()
        if self.disabled and self.retry_at is not None and now < self.retry_at:
            return 0
        try:
            folder = open_folder(self.path)
        except Unusable as exc:
            self._disable(str(exc), now)
            return 0
        try:
            if self.disabled:
                log.info("drop folder %s: usable again; taking inputs", self.path)
                self.disabled, self.retry_at = "", None
            return self._scan(folder, now)
        except Unusable as exc:
            self._disable(str(exc), now)
            return 0
        finally:
            folder.close()

    def _scan(self, folder: OpenFolder, now: datetime) -> int:
        pending = 0
        names = sorted(os.listdir(folder.fd))
        for name in names:
            if self.stopping.is_set():
                break
            if ignored(name) and not unsafe_name(name):
                continue
            if name in self.stuck and now < self.stuck[name]:
                continue
            try:
                outcome = self._one(folder, name, now)
            except Unusable:
                raise
            except Exception:  # even rejecting failed (a bug): set it aside, say so rarely
                self.stuck[name] = now + self.retry_unusable
                self.quiet.exception(f"stuck:{name}", "drop folder %s: cannot handle %s; "
                                     "trying again in %s", self.path, display_name(name),
                                     self.retry_unusable)
                continue
            if outcome == "later":
                return 0  # every input would fail alike; the next rescan tries again
            pending += outcome == "pending"
        for gone in set(self.seen) - set(names):
            del self.seen[gone]
        for gone in set(self.stuck) - set(names):
            del self.stuck[gone]
        return pending

    def _one(self, folder: OpenFolder, name: str, now: datetime) -> str:
        """Settle, take or reject one input. Never raises, except Unusable."""
        try:
            entry = examine(folder.fd, name, self.max_bytes, self.path)
        except (FileNotFoundError, Unsettled):
            self.seen.pop(name, None)
            return "gone"
        except Refused as exc:
            return self.reject(folder, name, str(exc))
        except Exception as exc:
            return self._failed(folder, name, exc)
        if not self._settled(entry, now):
            return "pending"
        if entry.incomplete:
            return self.reject(folder, name, (
                f"{entry.incomplete}, and nothing in it changed for "
                f"{self.abandoned.total_seconds() / 60:.0f} minutes; put the folder back "
                "with the form and its documents only"))
        self.seen.pop(name, None)
        try:
            result = self.taker.take(entry)
        except FileNotFoundError:
            return "gone"
        except Unsettled:
            return "pending"  # it moved since it looked stable: its wait starts again
        except Refused as exc:
            return self.reject(folder, name, str(exc), getattr(exc, "form", ""), exc)
        except Exception as exc:
            return self._failed(folder, name, exc)
        try:
            target = unique_target(folder.processed, name, self._stamp())
            if result is not None:
                write_atomic(folder.processed, target + ".result.txt", result)
            os.rename(name, target, src_dir_fd=folder.fd, dst_dir_fd=folder.processed)
        except FileNotFoundError:
            return "gone"
        except OSError as exc:
            return self._unmovable(folder, name, "processed", exc, now)
        log.info("drop folder %s: took %s", self.path, display_name(name))
        return "taken"

    def _failed(self, folder: OpenFolder, name: str, exc: Exception) -> str:
        """The store is down or the process short of resources: leave every input for the
        next rescan. Otherwise the input is at fault (or a bug is): reject it once."""
        if isinstance(exc, TRANSIENT) or (isinstance(exc, OSError)
                                          and exc.errno in TRANSIENT_ERRNOS):
            self.quiet.warning("later", "drop folder %s: cannot take inputs now (%s: %s); "
                               "they stay in the folder and are tried again", self.path,
                               type(exc).__name__, exc)
            return "later"
        if isinstance(exc, PermissionError):
            return self.reject(folder, name, _unreadable(exc))
        return self._unexpected(folder, name, exc)

    def _settled(self, entry: Entry, now: Any) -> bool:
        before = self.seen.get(entry.name)
        if before is None or before[0] != entry.signature:
            self.seen[entry.name] = (entry.signature, now)
            return self.stable.total_seconds() == 0 and not entry.incomplete
        wait = self.abandoned if entry.incomplete else self.stable
        return bool(now - before[1] >= wait)

    def _unexpected(self, folder: OpenFolder, name: str, exc: Exception) -> str:
        """A failure nobody foresaw: reject the input once with the reason, never retry."""
        log.error("drop folder %s: could not take %s", self.path, display_name(name),
                  exc_info=exc)
        self._alert(f"drop-unexpected:{self.path}", f"drop folder {self.path}: an input "
                    "could not be taken", f"{display_name(name)} was moved to rejected/ "
                    f"after an unexpected error ({type(exc).__name__}: {exc}). The log has "
                    "the details.")
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        return self.reject(folder, name, f"ringi could not read this input ({why}); the "
                           "administrator has been told")

    def reject(self, folder: OpenFolder, name: str, reason: str, form: str = "",
               cause: Exception | None = None) -> str:
        target = ""
        try:
            owner: int | None = os.stat(name, dir_fd=folder.fd, follow_symlinks=False).st_uid
            target = unique_target(folder.rejected, name, self._stamp())
            write_atomic(folder.rejected, target + ".error.txt",
                         error_text(display_name(name), self.taker.label, reason, form))
            os.rename(name, target, src_dir_fd=folder.fd, dst_dir_fd=folder.rejected)
        except OSError as exc:
            if target:  # no reason left behind for an input that is not there
                with contextlib.suppress(OSError):
                    os.unlink(target + ".error.txt", dir_fd=folder.rejected)
            if isinstance(exc, FileNotFoundError):
                self.seen.pop(name, None)
                return "gone"
            return self._unmovable(folder, name, "rejected", exc, self.clock.now())
        self.seen.pop(name, None)
        log.warning("drop folder %s: refused %s: %s", self.path, display_name(name), reason)
        try:
            self.taker.refused(display_name(name), owner, reason, form, cause)
        except Exception:
            self.quiet.exception(f"notify:{name}", "drop folder %s: could not notify about %s",
                                 self.path, display_name(name))
        return "rejected"

    def _unmovable(self, folder: OpenFolder, name: str, where: str, exc: OSError,
                   now: datetime) -> str:
        """The move failed: the bookkeeping folder's fault disables the folder; the input's
        own (immutable file, say) leaves it where it is, tried again slowly."""
        if exc.errno in (errno.EXDEV, errno.EROFS, errno.ENOSPC, errno.EDQUOT):
            raise Unusable(f"{where}/ cannot take inputs ({exc.strerror})")
        self.stuck[name] = now + self.retry_unusable
        self.seen.pop(name, None)
        self.quiet.error(f"stuck:{name}", "drop folder %s: cannot move %s to %s/ (%s); "
                         "trying again in %s", self.path, display_name(name), where,
                         exc.strerror, self.retry_unusable)
        self._alert(f"drop-stuck:{self.path}:{name}", f"drop folder {self.path}: "
                    f"{display_name(name)} cannot be moved",
                    f"ringi cannot move {display_name(name)} to {where}/ ({exc.strerror}). "
                    "Move it away by hand or fix its permissions.")
        return "stuck"

    def _disable(self, why: str, now: datetime) -> None:
        self.retry_at = now + self.retry_unusable
        if self.disabled == why:
            return
        self.disabled = why
        log.error("drop folder %s is disabled: %s; looking again every %s", self.path, why,
                  self.retry_unusable)
        self._alert(f"drop-folder:{self.path}", f"drop folder {self.path} is disabled",
                    f"ringi takes nothing from {self.path}: {why}.\nFix it; ringi looks "
                    f"again every {self.retry_unusable} and resumes by itself.")

    def _alert(self, key: str, subject: str, body: str) -> None:
        if self.alerts is None or self.store is None:
            return
        try:
            with self.store.transaction() as s:
                self.alerts.tell(s, key, subject, body)
        except Exception:
            self.quiet.exception("alert", "drop folder %s: could not queue the administrator "
                                 "alert %r", self.path, subject)

    def _stamp(self) -> str:
        return self.clock.now().strftime("%Y%m%dT%H%M%S")


class _Hint(FileSystemEventHandler):
    def __init__(self, scanner: DropScanner) -> None:
        self.scanner = scanner

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.scanner.wakeup.set()


class DropWatcher:
    """Runs every scanner, with one watchdog observer feeding them hints."""

    def __init__(self, scanners: list[DropScanner]) -> None:
        self.scanners = scanners
        self.observer: Any = None

    def start(self) -> None:
        if self.scanners:
            self.observer = Observer()
            for sc in self.scanners:
                try:  # a folder that cannot be watched is still rescanned (and reported)
                    sc.path.mkdir(parents=True, exist_ok=True)
                    self.observer.schedule(_Hint(sc), str(sc.path), recursive=True)
                except OSError as exc:
                    log.warning("drop folder %s: no file-system events (%s); rescans only",
                                sc.path, exc)
            self.observer.start()
        for sc in self.scanners:
            sc.start()

    def stop(self) -> None:
        for sc in self.scanners:
            sc.stop()
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(10)


def _unreadable(exc: OSError) -> str:
    return (f"ringi may not read it ({exc.strerror}); make it readable by ringi (the "
            "folder's group), then put it back")


def signature_key(entry: Entry) -> str:
    return hashlib.sha256(repr(entry.signature).encode()).hexdigest()[:24]


__all__ = ["DropScanner", "DropWatcher", "Taker", "error_text", "signature_key"]
