"""Execution destinations as data: `rules/destinations.toml` (SPEC 6.5).

Who receives an approved case's execution request, in which form (mail template, attached
data format, language), and when they accept it (calendar). The first `[[destinations]]`
entry whose case types and `when` condition match is used; otherwise the `[default]` table,
if it has an address. The whole file is validated at start; a refused file leaves its last
good version in force (daemon.rulefiles), so a typo never sends an approved order astray.
"""

from __future__ import annotations

import codecs
import datetime as dt
import logging
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.conditions.expr import Compiled, ExprError, check_fields, compile_expr, evaluate
from daemon.execution.calendar import Calendar, CalendarError, parse_hours, zone

log = logging.getLogger(__name__)

FORMATS = ("json", "csv", "text", "none")
LOCALES = ("en", "ja")
COMMON_KEYS = {"name", "title", "address", "template", "format", "locale",
               "filename", "encoding", "calendar"}
DESTINATION_KEYS = COMMON_KEYS | {"case_types", "when"}
CALENDAR_KEYS = {"business_days", "hours", "timezone", "holidays"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
BUILTIN = {"template": "execution_request", "format": "json", "locale": "en",
           "filename": "order-{number}", "encoding": "utf-8"}
BUILTIN_CALENDAR = {"business_days": True, "hours": "00:00-24:00", "timezone": "UTC"}

# (name, locale) -> a problem with that mail template, or None when it renders.
TemplateCheck = Callable[[str, str], str | None]


class DestinationError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{len(errors)} problem(s) in destinations")
        self.errors = errors


@dataclass(frozen=True)
class Destination:
    name: str
    title: str  # how requesters see it named, e.g. "ACME order desk"
    address: str
    case_types: frozenset[str]
    when: Compiled | None
    template: str
    format: str  # json, csv, text or none (no attachment)
    locale: str
    filename: str  # without extension; {number} and {type} are replaced
    encoding: str  # csv and text; json is always UTF-8
    calendar: Calendar


@dataclass(frozen=True)
class Destinations:
    entries: tuple[Destination, ...] = ()
    default: Destination | None = None  # None: the [default] table has no address
    source: str = ""

    def choose(self, case_type: str, fields: dict[str, Any], kinds: dict[str, str],
               context: dict[str, Any]) -> Destination | None:
        """The first entry that matches, else the default; a `when` that cannot be
        evaluated (e.g. its field is unset) does not match."""
        for d in self.entries:
            if case_type not in d.case_types:
                continue
            if d.when is None:
                return d
            outcome = evaluate(d.when, fields, kinds, context)
            if outcome.error:
                log.warning("destination %s: when %r: %s", d.name, d.when.source, outcome.error)
            if outcome.value is True:
                return d
        return self.default

    def by_name(self, name: str) -> Destination | None:
        found = [d for d in (*self.entries, self.default) if d is not None and d.name == name]
        return found[0] if found else None

    def all(self) -> list[Destination]:
        return [*self.entries, *([self.default] if self.default else [])]


def _address_ok(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    local, sep, domain = value.partition("@")
    return bool(sep and local and "." in domain and not re.search(r"[\s<>,;\"]", value)
                and "@" not in domain)


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return None
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return None


class _Builder:
    """Collects every problem in the file, each naming the file and the entry."""

    def __init__(self, source: str, fields_of: dict[str, set[str]], weekdays: list[int],
                 holidays: list[dt.date], check_template: TemplateCheck) -> None:
        self.source = source
        self.fields_of = fields_of
        self.weekdays = weekdays
        self.holidays = holidays
        self.check_template = check_template
        self.errors: list[str] = []
        self.base: dict[str, Any] = {}
        self.base_calendar: dict[str, Any] = {}

    def err(self, where: str, msg: str) -> None:
        self.errors.append(f"{self.source}: {where}: {msg}")

    def calendar(self, where: str, own: Any, inherit: bool) -> Calendar | None:
        if not isinstance(own, dict):
            self.err(where, "calendar must be a table")
            return None
        for key in sorted(set(own) - CALENDAR_KEYS):
            self.err(where, f"calendar: unknown key {key!r}")
        merged = {**BUILTIN_CALENDAR, **self.base_calendar, **own}
        days = merged["business_days"]
        if days is True:
            weekdays = frozenset(self.weekdays)
        elif days is False:
            weekdays = frozenset(range(7))
        elif isinstance(days, list) and days and all(
                isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in days):
            weekdays = frozenset(days)
        else:
            self.err(where, "calendar.business_days must be true (the company's working days, "
                     "[workflow] business_days), false (every day) or a list of weekdays 0-6")
            return None
        holidays = set(self.holidays)
        inherited = self.base_calendar.get("holidays", []) if inherit else []
        for raw in (inherited, own.get("holidays", [])):
            if not isinstance(raw, list):
                self.err(where, "calendar.holidays must be a list of dates")
                continue
            for value in raw:
                day = _date(value)
                if day is None:
                    self.err(where, f"calendar.holidays: {value!r} is not a date (2026-12-31)")
                else:
                    holidays.add(day)
        try:
            if not isinstance(merged["hours"], str) or not isinstance(merged["timezone"], str):
                raise CalendarError("calendar.hours and calendar.timezone must be text")
            return Calendar(weekdays, parse_hours(merged["hours"]), zone(merged["timezone"]),
                            frozenset(holidays))
        except CalendarError as exc:
            self.err(where, f"calendar: {exc}")
            return None

    def entry(self, raw: Any, where: str, is_default: bool) -> Destination | None:
        if not isinstance(raw, dict):
            self.err(where, "must be a table")
            return None
        before = len(self.errors)
        allowed = COMMON_KEYS if is_default else DESTINATION_KEYS
        for key in sorted(set(raw) - allowed):
            hint = " (the default applies to every case type)" if key in DESTINATION_KEYS \
                else ""
            self.err(where, f"unknown key {key!r}{hint}")
        merged = {**BUILTIN, **self.base, **raw} if not is_default else {**BUILTIN, **raw}
        name = raw.get("name", "default" if is_default else None)
        if not isinstance(name, str) or not _NAME.match(name):
            self.err(where, "name must be letters, digits, '.', '_' or '-' (e.g. \"acme-orders\")")
        address = raw.get("address", "")
        if not (is_default and address == "") and not _address_ok(address):
            self.err(where, f"address must be an email address (got {address!r})")
        if "title" in raw and not isinstance(raw["title"], str):
            self.err(where, "title must be text")
        fmt, locale = merged["format"], merged["locale"]
        if fmt not in FORMATS:
            self.err(where, f"format must be one of {', '.join(FORMATS)} (got {fmt!r})")
        if locale not in LOCALES:
            self.err(where, f"locale must be one of {', '.join(LOCALES)} (got {locale!r})")
        filename = merged["filename"]
        try:
            if not isinstance(filename, str) or re.search(r"[/\\]", filename):
                raise ValueError
            filename.format(number="R-1", type="t")
        except (ValueError, KeyError, IndexError):
            self.err(where, "filename must be a plain name; {number} and {type} are replaced")
        try:
            codecs.lookup(str(merged["encoding"]))
        except LookupError:
            self.err(where, f"unknown encoding {merged['encoding']!r}")
        template = merged["template"]
        if not isinstance(template, str) or not template:
            self.err(where, "template must name a mail template")
        elif locale in LOCALES:
            problem = self.check_template(template, locale)
            if problem:
                self.err(where, f"template {template!r}: {problem}")
        case_types, when = self.subjects(raw, where) if not is_default else (frozenset(), None)
        cal = self.calendar(where, raw.get("calendar", {}), inherit=not is_default)
        if len(self.errors) > before or cal is None:
            return None
        assert isinstance(name, str)
        return Destination(
            name=name, title=str(raw.get("title") or name), address=str(address),
            case_types=case_types, when=when, template=str(template),
            format=str(fmt), locale=str(locale), filename=str(filename),
            encoding=str(merged["encoding"]), calendar=cal)

    def subjects(self, raw: dict[str, Any], where: str) -> tuple[frozenset[str], Compiled | None]:
        types = raw.get("case_types")
        if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
            self.err(where, "case_types = [\"...\"] is required (a non-empty list)")
            return frozenset(), None
        for ct in types:
            if ct not in self.fields_of:
                self.err(where, f"unknown case type {ct!r}")
        when = raw.get("when")
        if when is None:
            return frozenset(types), None
        if not isinstance(when, str):
            self.err(where, "when must be a condition in text")
            return frozenset(types), None
        try:
            compiled = compile_expr(when)
        except ExprError as exc:
            self.err(where, f"when does not compile: {exc}")
            return frozenset(types), None
        known = set().union(*(self.fields_of.get(t, set()) for t in types))
        for problem in check_fields(compiled, known):
            self.err(where, f"when: {problem}")
        return frozenset(types), compiled


def load_destinations(path: Path, fields_of: dict[str, set[str]], weekdays: list[int],
                      holidays: list[dt.date], check_template: TemplateCheck,
                      text: str | None = None) -> Destinations:
    """Read and validate the file (or *text*, a stored last good version of it); a missing
    file means no destination at all."""
    if text is None and not path.is_file():
        return Destinations(source=str(path))
    try:
        body = tomllib.loads(path.read_text(encoding="utf-8") if text is None else text)
    except OSError as exc:
        raise DestinationError([f"{path}: cannot read file: {exc}"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DestinationError([f"{path}: not valid TOML: {exc}"]) from None
    b = _Builder(str(path), fields_of, weekdays, holidays, check_template)
    for key in sorted(set(body) - {"default", "destinations"}):
        b.err("top level", f"unknown key {key!r} (expected [default] and [[destinations]])")
    raw_default = body.get("default", {})
    if isinstance(raw_default, dict):
        b.base = {k: v for k, v in raw_default.items() if k in BUILTIN}
        cal = raw_default.get("calendar", {})
        b.base_calendar = cal if isinstance(cal, dict) else {}
    default = b.entry(raw_default, "[default]", is_default=True)
    raw_entries = body.get("destinations", [])
    if not isinstance(raw_entries, list):
        b.err("destinations", "must be [[destinations]] tables")
        raw_entries = []
    entries, names = [], {default.name} if default else set()
    for i, raw in enumerate(raw_entries, 1):
        label = raw.get("name") if isinstance(raw, dict) else None
        where = f"destination {label!r}" if isinstance(label, str) else f"destination #{i}"
        d = b.entry(raw, where, is_default=False)
        if d is not None and d.name in names:
            b.err(where, "name is used twice")
        elif d is not None:
            names.add(d.name)
            entries.append(d)
    if b.errors:
        raise DestinationError(b.errors)
    return Destinations(tuple(entries), default if default and default.address else None,
                        str(path))
