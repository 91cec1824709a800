"""One injectable clock: tests move time forward instead of sleeping."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time, always timezone-aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to (tests, benchmarks)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when


class OffsetClockError(ValueError):
    """A clock offset that cannot be read; the message says which forms are accepted."""


_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_COMPACT = re.compile(r"(\d{1,6})([wdhms])")
_ISO = re.compile(r"P(?:(\d{1,6})W)?(?:(\d{1,6})D)?"
                  r"(?:T(?:(\d{1,6})H)?(?:(\d{1,6})M)?(?:(\d{1,6})S)?)?")
MAX_OFFSET = timedelta(days=3660)  # ten years: beyond that it is a typo, not a rehearsal


def parse_offset(text: str) -> timedelta:
    """`31d`, `12h`, `90m`, `-2d`, `1d12h` (w d h m s), or ISO-8601 `P31D`, `-PT36H`."""
    raw = text.strip()
    sign, body = (-1, raw[1:]) if raw[:1] == "-" else (1, raw.removeprefix("+"))
    seconds: int | None = None
    iso = _ISO.fullmatch(body.upper())
    if iso and body.upper() not in ("P", "PT") and not body.upper().endswith("T"):
        w, d, h, m, s = (int(g or 0) for g in iso.groups())
        seconds = (((w * 7 + d) * 24 + h) * 60 + m) * 60 + s
    elif body and _COMPACT.sub("", body.lower()) == "":
        units = [u for _, u in _COMPACT.findall(body.lower())]
        if len(units) == len(set(units)):
            seconds = sum(int(n) * _UNITS[u] for n, u in _COMPACT.findall(body.lower()))
    if seconds is None:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise OffsetClockError(
            f"{shown!r} is not a clock offset (use e.g. 31d, 12h, 90m, -2d, 1d12h or P31D)")
    offset = sign * timedelta(seconds=seconds)
    if abs(offset) > MAX_OFFSET:
        raise OffsetClockError(f"{raw!r} is more than ten years")
    return offset


def describe_offset(offset: timedelta) -> str:
    """`+31d`, `-1d12h`, `+90m`: the form the operator typed, for logs and `ringi status`."""
    sign = "-" if offset < timedelta(0) else "+"
    left = int(abs(offset).total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return sign + ("".join(parts) or "0s")


class OffsetClock:
    """Another clock moved by a fixed offset: rehearsing an effective time, or testing a
    running daemon from outside. Never for production (`ringi --clock-offset`)."""

    def __init__(self, base: Clock, offset: timedelta) -> None:
        self.base = base
        self.offset = offset

    def now(self) -> datetime:
        return self.base.now() + self.offset
