"""A destination's calendar: when an execution request may be sent (SPEC 6.5)."""

from __future__ import annotations

import datetime as dt

import pytest

from daemon.execution.calendar import Calendar, CalendarError, next_allowed, parse_hours, zone

TOKYO = zone("Asia/Tokyo")
WEEK = frozenset(range(5))
CULTURE_DAY = dt.date(2026, 11, 3)  # a Tuesday
OFFICE = Calendar(WEEK, parse_hours("09:00-17:30"), TOKYO, frozenset({CULTURE_DAY}))
LUNCH = Calendar(WEEK, parse_hours("13:00-17:30, 09:00-12:00"), TOKYO)


def jst(day: int, hh: int, mm: int, ss: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hh, mm, ss, tzinfo=TOKYO)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (jst(2, 8, 59, 59), jst(2, 9, 0)),  # Monday, just before opening
        (jst(2, 9, 0), jst(2, 9, 0)),  # opening time itself is open
        (jst(2, 12, 0), jst(2, 12, 0)),
        (jst(2, 17, 29, 59), jst(2, 17, 29, 59)),  # just before closing
        (jst(2, 17, 30), jst(4, 9, 0)),  # closing time is closed; Tuesday is a holiday
        (jst(3, 10, 0), jst(4, 9, 0)),  # on the holiday itself
        (jst(4, 0, 0), jst(4, 9, 0)),  # midnight
        (jst(6, 17, 30), jst(9, 9, 0)),  # Friday evening -> Monday
        (jst(6, 23, 59), jst(9, 9, 0)),
        (jst(7, 10, 0), jst(9, 9, 0)),  # Saturday
        (jst(8, 23, 59, 59), jst(9, 9, 0)),  # Sunday night
    ],
)
def test_office_hours(now: dt.datetime, expected: dt.datetime) -> None:
    got = next_allowed(now.astimezone(dt.UTC), OFFICE)
    assert got == expected and got.tzinfo is not None


def test_the_local_date_decides_not_the_utc_date() -> None:
    # Sunday 23:00 UTC is Monday 08:00 in Tokyo: Monday's opening, not Sunday's rules.
    now = dt.datetime(2026, 11, 8, 23, 0, tzinfo=dt.UTC)
    assert next_allowed(now, OFFICE) == dt.datetime(2026, 11, 9, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (jst(2, 11, 59), jst(2, 11, 59)),
        (jst(2, 12, 0), jst(2, 13, 0)),  # lunch
        (jst(2, 12, 59), jst(2, 13, 0)),
        (jst(2, 13, 0), jst(2, 13, 0)),
    ],
)
def test_several_ranges_a_day(now: dt.datetime, expected: dt.datetime) -> None:
    assert next_allowed(now, LUNCH) == expected


def test_time_zone_change_is_followed() -> None:
    """New York leaves daylight time on Sunday 1 Nov 2026: Monday 09:00 is 14:00 UTC."""
    ny = Calendar(WEEK, parse_hours("09:00-17:00"), zone("America/New_York"))
    saturday = dt.datetime(2026, 10, 31, 16, 0, tzinfo=dt.UTC)  # 12:00 EDT
    assert next_allowed(saturday, ny) == dt.datetime(2026, 11, 2, 14, 0, tzinfo=dt.UTC)


def test_always_open() -> None:
    always = Calendar(frozenset(range(7)), parse_hours("00:00-24:00"), zone("UTC"))
    now = dt.datetime(2026, 11, 7, 23, 59, 59, tzinfo=dt.UTC)
    assert next_allowed(now, always) == now


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9-17", "write ranges like"),
        ("17:00-09:00", "the start must be before the end"),
        ("09:00-24:01", "within 00:00-24:00"),
        ("09:60-10:00", "the start must be before the end"),
        ("09:00-12:00,11:00-13:00", "ranges overlap"),
    ],
)
def test_bad_hours(text: str, message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        parse_hours(text)


def test_unknown_zone() -> None:
    with pytest.raises(CalendarError, match="unknown time zone 'Asia/Tokio'"):
        zone("Asia/Tokio")
