"""Drop-folder channel: rescans are the truth, watchdog events only make them come sooner.

An input is taken once it has stopped changing for `stable_seconds`, stored durably, and
only then moved to processed/. A refused input moves to rejected/ with NAME.error.txt.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from daemon.clock import Clock
from daemon.intake.dropsafety import (
    Entry,
    Refused,
    display_name,
    ensure_dir,
    examine,
    ignored,
    unique_target,
    unsafe_name,
    write_atomic,
)

log = logging.getLogger(__name__)


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
                 rescan_seconds: float, max_bytes: int) -> None:
        self.path = path
        self.taker = taker
        self.clock = clock
        self.stable = timedelta(seconds=stable_seconds)
        self.rescan_seconds = rescan_seconds
        self.max_bytes = max_bytes
        self.seen: dict[str, tuple[tuple[object, ...], Any]] = {}
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
            except Exception:
                log.exception("drop folder %s: scan failed; retrying", self.path)
                pending = 1
            wait = max(self.stable.total_seconds() / 2, 0.1) if pending else self.rescan_seconds
            self.wakeup.wait(wait)
            self.wakeup.clear()

    def scan(self) -> int:
        """One pass over the folder. Returns how many inputs are still settling."""
        self.path.mkdir(parents=True, exist_ok=True)
        processed, rejected = self.path / "processed", self.path / "rejected"
        ensure_dir(processed)
        ensure_dir(rejected)
        now = self.clock.now()
        pending = 0
        names = sorted(os.listdir(self.path))
        for name in names:
            if self.stopping.is_set():
                break
            path = self.path / name
            if ignored(name) and not unsafe_name(name):
                continue
            try:
                entry = examine(path, self.max_bytes)
            except FileNotFoundError:
                continue
            except Refused as exc:
                self.reject(path, name, str(exc))
                continue
            if not self._settled(entry, now):
                pending += 1
                continue
            self.seen.pop(name, None)
            try:
                result = self.taker.take(entry)
            except FileNotFoundError:
                continue
            except Refused as exc:
                self.reject(path, name, str(exc), getattr(exc, "form", ""), exc)
                continue
            except Exception:  # store down, bug: leave it for the next scan, never lose it
                log.exception("drop folder %s: could not take %s; will retry", self.path, name)
                pending += 1
                continue
            target = unique_target(processed, name, self._stamp())
            if result is not None:
                write_atomic(target.with_name(target.name + ".result.txt"), result)
            os.rename(path, target)
            log.info("drop folder %s: took %s", self.path, display_name(name))
        for gone in set(self.seen) - set(names):
            del self.seen[gone]
        return pending

    def _settled(self, entry: Entry, now: Any) -> bool:
        before = self.seen.get(entry.name)
        if before is None or before[0] != entry.signature:
            self.seen[entry.name] = (entry.signature, now)
            return self.stable.total_seconds() == 0
        return bool(now - before[1] >= self.stable)

    def reject(self, path: Path, name: str, reason: str, form: str = "",
               cause: Exception | None = None) -> None:
        try:
            owner: int | None = os.lstat(path).st_uid
        except FileNotFoundError:
            return
        target = unique_target(self.path / "rejected", name, self._stamp())
        write_atomic(target.with_name(target.name + ".error.txt"),
                     error_text(display_name(name), self.taker.label, reason, form))
        os.rename(path, target)
        self.seen.pop(name, None)
        log.warning("drop folder %s: refused %s: %s", self.path, display_name(name), reason)
        try:
            self.taker.refused(display_name(name), owner, reason, form, cause)
        except Exception:
            log.exception("drop folder %s: could not notify about %s", self.path, name)

    def _stamp(self) -> str:
        return self.clock.now().strftime("%Y%m%dT%H%M%S")


def error_text(entry: str, folder: str, reason: str, form: str = "") -> str:
    """The NAME.error.txt beside a refused input, in plain words (English and Japanese)."""
    text = (f"ringi could not accept {entry!r} from the drop folder {folder!r}.\n"
            f"ringi はドロップフォルダ {folder!r} の {entry!r} を受け付けられませんでした。\n\n"
            f"Reason / 理由:\n{reason}\n\n"
            "Nothing was registered. Correct the problem and put the request in the folder "
            "again.\n何も登録されていません。問題を直して、もう一度フォルダに置いてください。\n")
    if form:
        text += f"\nForm / 書式:\n\n{form}\n"
    return text


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
        for sc in self.scanners:
            sc.path.mkdir(parents=True, exist_ok=True)
        if self.scanners:
            self.observer = Observer()
            for sc in self.scanners:
                self.observer.schedule(_Hint(sc), str(sc.path), recursive=True)
            self.observer.start()
        for sc in self.scanners:
            sc.start()

    def stop(self) -> None:
        for sc in self.scanners:
            sc.stop()
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(10)


def signature_key(entry: Entry) -> str:
    return hashlib.sha256(repr(entry.signature).encode()).hexdigest()[:24]
