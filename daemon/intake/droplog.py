"""What a drop folder writes for people: the bilingual NAME.error.txt, and a log that
says the same thing about the same input at most once per rescan interval."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from daemon.clock import Clock


class QuietLog:
    """Rate-limits log lines by key (an input's name, "store", ...) on the injected clock,
    so a folder full of troubles makes a bounded log whatever the scan rate."""

    def __init__(self, log: logging.Logger, clock: Clock, every: timedelta) -> None:
        self.log = log
        self.clock = clock
        self.every = every
        self.said: dict[str, datetime] = {}

    def _due(self, key: str) -> bool:
        now = self.clock.now()
        last = self.said.get(key)
        if last is not None and now - last < self.every:
            return False
        self.said[key] = now
        return True

    def forget_old(self) -> None:
        """Drop keys whose interval is over, so the table stays as small as the trouble."""
        cutoff = self.clock.now() - self.every
        for key in [k for k, t in self.said.items() if t <= cutoff]:
            del self.said[key]

    def warning(self, key: str, msg: str, *args: Any) -> None:
        if self._due(key):
            self.log.warning(msg, *args)

    def error(self, key: str, msg: str, *args: Any) -> None:
        if self._due(key):
            self.log.error(msg, *args)

    def exception(self, key: str, msg: str, *args: Any) -> None:
        """ERROR with the traceback of the exception being handled."""
        if self._due(key):
            self.log.error(msg, *args, exc_info=True)


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
