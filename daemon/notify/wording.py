"""How mails word the things every mail shows: subjects, times, amounts, greetings.

One place for each, so a subject or a time reads the same in every template and language
(templates reach them as `case_subject(...)`, `greeting(...)` and the `when` filter).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

# Characters of a subject before its reply token: what a phone's mail list shows on two
# lines. (Counted in characters, not screen columns: counting a Japanese character twice
# left no room for the amount and title in a Japanese subject.)
SUBJECT_MAX = 80
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ELLIPSIS = "\u2026"


def shorten(text: str, width: int) -> str:
    """`text` cut to at most `width` characters, an ellipsis showing where it was cut."""
    if len(text) <= width:
        return text
    return text[: width - 1].rstrip() + _ELLIPSIS


def money_text(value: Any, locale: str) -> str:
    """An amount in yen as a reader of `locale` writes it: ¥180,000 or 180,000円."""
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    digits = f"{amount:,f}" if amount != amount.to_integral() else f"{amount:,.0f}"
    return f"{digits}円" if locale == "ja" else f"¥{digits}"


def case_subject(view: Mapping[str, Any], label: str, locale: str,
                 token: str | None = None) -> str:
    """The subject of every mail about a case: number, what happened, type, requester,
    amount (where the type has one) and title, then the reply token.

    Only the title is shortened to keep within SUBJECT_MAX; the number comes first and the
    token last, so neither is ever cut.
    """
    facts = [str(view.get(k) or "") for k in ("type_title", "requester", "amount")]
    head = f"[{view['number']}] {label}: " + " / ".join(" ".join(f.split()) for f in facts if f)
    title = " ".join(str(view.get("title") or "").split())
    room = SUBJECT_MAX - len(head) - 3
    # With a very long label or name the title goes; the number at the front stays.
    head = f"{head} / {shorten(title, room)}" if title and room >= 6 else \
        shorten(head, SUBJECT_MAX)
    return f"{head} [#{token}]" if token else head


def greeting(name: str | None, locale: str) -> str:
    """The opening line of a mail to a person: "Dear Taro Tanaka," / "田中 太郎 様"."""
    name = " ".join((name or "").split())
    if locale == "ja":
        return f"{name} 様" if name else "ご担当者様"
    return f"Dear {name}," if name else "Hello,"


def _as_time(value: Any) -> dt.datetime | dt.date | None:
    if isinstance(value, dt.datetime | dt.date):
        return value
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:  # a day alone ("2027-04-30") is a date, not midnight UTC of that day
            return dt.date.fromisoformat(text) if len(text) == 10 else \
                dt.datetime.fromisoformat(text)
        except ValueError:
            return None
    return None


def local_time(when: Any, zone: str, locale: str) -> str:
    """A time as its reader expects it, in the company's zone: en `3 Dec 2026 18:00
    (Asia/Tokyo)`, ja `2026年12月3日 18:00` (the zone named when it is not Japan's).

    Takes datetimes, dates (no time shown) and ISO strings; a naive time is UTC, as the
    store keeps it. Anything else is shown as given; nothing is shown for None.
    """
    value = _as_time(when)
    if value is None:
        return "" if when is None else str(when)
    if not isinstance(value, dt.datetime):
        if locale == "ja":
            return f"{value.year}年{value.month}月{value.day}日"
        return f"{value.day} {_MONTHS[value.month - 1]} {value.year}"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    try:
        local = value.astimezone(ZoneInfo(zone))
    except (ValueError, KeyError, OSError):
        local, zone = value.astimezone(dt.UTC), "UTC"
    if locale == "ja":
        shown = f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"
        return shown if zone in ("Asia/Tokyo", "Japan") else f"{shown} ({zone})"
    return f"{local.day} {_MONTHS[local.month - 1]} {local.year} {local:%H:%M} ({zone})"
