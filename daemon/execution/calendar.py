"""When a destination accepts execution requests: working days, opening hours, holidays.

An order approved on Friday evening should reach the supplier's desk when it opens on
Monday, not sit in its mailbox over the weekend (or be handled by nobody on a holiday).
Times are judged in the destination's own time zone.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

DAY_MINUTES = 24 * 60
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
# Give up looking for an opening after this many days (a calendar closed for good).
_HORIZON_DAYS = 3 * 366


class CalendarError(ValueError):
    """A calendar value that cannot be understood; the message says why."""


@dataclass(frozen=True)
class Calendar:
    weekdays: frozenset[int]  # 0 = Monday
    windows: tuple[tuple[int, int], ...]  # opening (start, end) in minutes of the day
    timezone: ZoneInfo
    holidays: frozenset[dt.date] = frozenset()

    def describe(self) -> str:
        days = "".join("MTWTFSS"[d] if d in self.weekdays else "-" for d in range(7))
        hours = ",".join(f"{_hhmm(a)}-{_hhmm(b)}" for a, b in self.windows)
        extra = f", {len(self.holidays)} holiday(s)" if self.holidays else ""
        return f"{days} {hours} {self.timezone.key}{extra}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_hours(text: str) -> tuple[tuple[int, int], ...]:
    """"09:00-17:30" or "09:00-12:00, 13:00-17:30" as minute ranges ("24:00" ends a day)."""
    windows = []
    for part in text.split(","):
        m = _RANGE.match(part)
        if m is None:
            raise CalendarError(f"hours {text!r}: write ranges like \"09:00-17:30\"")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if m1 > 59 or m2 > 59 or start >= DAY_MINUTES or end > DAY_MINUTES or start >= end:
            raise CalendarError(f"hours {part.strip()!r}: the start must be before the end, "
                                "within 00:00-24:00")
        windows.append((start, end))
    windows.sort()
    for (_, end), (start, _) in itertools.pairwise(windows):
        if start < end:
            raise CalendarError(f"hours {text!r}: ranges overlap")
    return tuple(windows)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise CalendarError(f"unknown time zone {name!r} (use an IANA name such as "
                            "\"Asia/Tokyo\")") from None


def next_allowed(now: dt.datetime, cal: Calendar) -> dt.datetime:
    """`now` if the destination is open then, else its next opening time (UTC-aware)."""
    local = now.astimezone(cal.timezone)
    day = local.date()
    second = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    for offset in range(_HORIZON_DAYS):
        current = day + dt.timedelta(days=offset)
        if current.weekday() not in cal.weekdays or current in cal.holidays:
            continue
        for start, end in cal.windows:
            if offset == 0 and second >= end * 60:
                continue  # this window has closed today
            if offset == 0 and second >= start * 60:
                return now  # open now
            opening = dt.datetime.combine(current, dt.time(start // 60, start % 60),
                                          tzinfo=cal.timezone)
            return opening.astimezone(dt.UTC)
    raise CalendarError(f"the calendar ({cal.describe()}) never opens")
