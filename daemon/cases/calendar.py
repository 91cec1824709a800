"""Business days: reminders and escalations count working days, not calendar days."""

from __future__ import annotations

import datetime
from collections.abc import Iterable


def add_business_days(start: datetime.datetime, days: int, weekdays: Iterable[int],
                      holidays: Iterable[datetime.date]) -> datetime.datetime:
    """`start` moved forward by `days` working days, keeping the time of day.

    Asked on Friday 15:00 with two business days: due Tuesday 15:00 (not Sunday).
    """
    work = set(weekdays)
    off = set(holidays)
    current = start
    left = days
    while left > 0:
        current += datetime.timedelta(days=1)
        if current.weekday() in work and current.date() not in off:
            left -= 1
    return current
