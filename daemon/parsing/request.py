"""Reading the "Field: value" form in a request mail and checking it against its case type.

Employees type these forms by hand in whatever mail client they have, often through a
Japanese IME, so parsing forgives spelling (full-width colons and digits, ¥ signs,
2026年11月30日) but is strict about meaning.  Every problem comes back as a message
saying how to fix it, in English and Japanese, because the reply mail is the only UI.
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from daemon.cases.casetypes import (
    LIST_SEPARATORS,
    TYPE_LINE_KEYS,
    CaseType,
    FieldKind,
    FieldSpec,
    normalise_key,
)
from daemon.parsing.numbers import MAX_DIGITS

# Normalised keys that name the case type.  Shared with casetypes, which refuses field
# labels that would collide with them.
TYPE_KEYS: frozenset[str] = TYPE_LINE_KEYS

# A key starts with a word character (so "- hint" and "* bullet" lines never parse as
# fields) and ends at the first ASCII or full-width colon, within 60 characters.
_KEY_LINE = re.compile(r"^(\w[^:：]{0,59}?)\s*[:：]\s*(.*)$")
# The marker a refused request comes back with ("Amount: 12,0OO   <-- not a number"): a
# person who corrects the value and leaves the marker still sends a clean value.
_MARKER = re.compile(r"(?:^|\s{2,})(?:<--\s|←)")
_LIST_SPLIT = re.compile("[" + re.escape(LIST_SEPARATORS) + "]")
_GROUPED = r"[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+"
_MONEY = re.compile(rf"^(?:jpy|¥)?\s*({_GROUPED})(?:\.([0-9]{{1,2}}))?\s*(?:円|jpy|yen)?$")
_NEGATIVE = re.compile(r"^(?:jpy|¥)?\s*[-−▲△]\s*[0-9]")
_INTEGER = re.compile(rf"^(?:{_GROUPED})$")
_DATES = (
    re.compile(r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})$"),
    re.compile(r"^([0-9]{4})/([0-9]{1,2})/([0-9]{1,2})$"),
    re.compile(r"^([0-9]{4})\s*年\s*([0-9]{1,2})\s*月\s*([0-9]{1,2})\s*日$"),
)


@dataclass(frozen=True)
class RawForm:
    """The form lines of a mail body, before anything is known about the case type."""

    type_key: str | None
    values: dict[str, str]
    line_of: dict[str, int]
    unknown_lines: list[str]


@dataclass(frozen=True)
class FieldProblem:
    """Why one field was refused, phrased so the sender can fix it."""

    field: str
    message: str
    message_ja: str


def parse_form_text(body: str) -> RawForm:
    """Collect "Key: value" lines up to the signature ("--") or the first quoted line.

    Indented lines continue the previous value; a blank line ends it.  Lines that are
    not "Key: value" (greetings, prose) are kept in unknown_lines and otherwise ignored.
    """
    type_key: str | None = None
    values: dict[str, str] = {}
    line_of: dict[str, int] = {}
    unknown: list[str] = []
    open_key: str | None = None  # field whose value indented lines extend
    for number, line in enumerate(body.splitlines(), start=1):
        text = line.strip()
        if text == "--" or text.startswith(">"):
            break
        if not text:
            open_key = None
            continue
        if line[0].isspace() and open_key is not None:
            previous = values[open_key]
            values[open_key] = f"{previous}\n{text}" if previous else text
            continue
        match = _KEY_LINE.match(text)
        if match is None:
            unknown.append(text)
            open_key = None
            continue
        key, value = normalise_key(match[1]), _MARKER.split(match[2], 1)[0].strip()
        if key in TYPE_KEYS:
            type_key, open_key = value or None, None
        else:
            values[key], line_of[key], open_key = value, number, key
    return RawForm(type_key=type_key, values=values, line_of=line_of, unknown_lines=unknown)


class _Refusal(Exception):
    """A value that cannot be converted; carries both languages of the message."""

    def __init__(self, message: str, message_ja: str) -> None:
        super().__init__(message)
        self.message, self.message_ja = message, message_ja


def _label_ja(spec: FieldSpec) -> str:
    return spec.label_ja or spec.label


def _shown(raw: str) -> str:
    """The offending value as quoted back in a message, kept to one short line."""
    text = " ".join(raw.split())
    return text if len(text) <= 40 else text[:39] + "…"


def validate_fields(ct: CaseType, form: RawForm) -> tuple[dict[str, Any], list[FieldProblem]]:
    """Convert the form's values for *ct*; return clean values by field name and problems.

    Blank values count as absent, so an unfilled optional line from render_form is fine
    and an unknown key with nothing after the colon is not worth a bounce.
    """
    lookup = {key: spec for spec in ct.fields for key in spec.match_keys()}
    given: dict[str, list[str]] = {}
    unknown: list[FieldProblem] = []
    for key, raw in form.values.items():
        spec = lookup.get(key)
        if spec is None:
            if raw.strip():
                unknown.append(_unknown_field(ct, key))
        elif raw.strip():
            given.setdefault(spec.name, []).append(key)
    clean: dict[str, Any] = {}
    problems: list[FieldProblem] = []
    for spec in ct.fields:
        keys = given.get(spec.name, [])
        if not keys:
            if spec.required:
                problems.append(_missing_field(spec))
        elif len(keys) > 1:
            problems.append(_repeated_field(spec, keys, form.line_of))
        else:
            try:
                clean[spec.name] = _CONVERTERS[spec.kind](spec, form.values[keys[0]])
            except _Refusal as refusal:
                problems.append(FieldProblem(spec.name, refusal.message, refusal.message_ja))
    return clean, problems + unknown


def _unknown_field(ct: CaseType, key: str) -> FieldProblem:
    labels = ", ".join(spec.label for spec in ct.fields)
    labels_ja = "、".join(_label_ja(spec) for spec in ct.fields)
    return FieldProblem(
        key,
        f"Unknown field '{key}'; the fields for {ct.title} are: {labels}",
        f"不明な項目「{key}」です。{ct.title_ja or ct.title}の項目は次のとおりです: {labels_ja}",
    )


def _missing_field(spec: FieldSpec) -> FieldProblem:
    return FieldProblem(
        spec.name,
        f"{spec.label}: this field is required; add a line '{spec.label}: ...' with a value",
        f"{_label_ja(spec)}: 必須項目です。「{_label_ja(spec)}: …」の行に値を書いてください",
    )


def _repeated_field(spec: FieldSpec, keys: list[str], line_of: dict[str, int]) -> FieldProblem:
    lines = sorted(line_of[key] for key in keys)
    where = ", ".join(str(n) for n in lines)
    return FieldProblem(
        spec.name,
        f"{spec.label}: given more than once (lines {where}); keep only one line",
        f"{_label_ja(spec)}: 複数回書かれています（{where}行目）。1行だけにしてください",
    )


def _fold(text: str) -> str:
    """Value form for matching: NFKC (full-width digits, ￥, ，), casefolded, trimmed."""
    return unicodedata.normalize("NFKC", text).casefold().strip()


def _plain(number: Decimal) -> str:
    """Decimal as plain digits without trailing zeros: 12000.50 -> '12000.5'."""
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _too_long(spec: FieldSpec, raw: str) -> _Refusal:
    """A number longer than any column or CEL int holds: refused before it is built."""
    shown, ja = _shown(raw), _label_ja(spec)
    return _Refusal(
        f"{spec.label}: '{shown}' has more than {MAX_DIGITS} digits; check the number",
        f"{ja}: 「{shown}」は{MAX_DIGITS}桁を超えています。数字を確認してください",
    )


def _money(spec: FieldSpec, raw: str) -> str:
    text = _fold(raw)
    match = _MONEY.match(text)
    if match is not None:
        digits = match[1].replace(",", "")
        if len(digits) > MAX_DIGITS:
            raise _too_long(spec, raw)
        return _plain(Decimal(f"{digits}.{match[2]}" if match[2] else digits))
    shown, ja = _shown(raw), _label_ja(spec)
    if _NEGATIVE.match(text):
        raise _Refusal(
            f"{spec.label}: '{shown}' is negative; write an amount of 0 or more such as 12000",
            f"{ja}: 「{shown}」はマイナスです。12000 のように0以上の金額を書いてください",
        )
    raise _Refusal(
        f"{spec.label}: '{shown}' is not an amount of money; "
        "write digits such as 12000 or ¥12,000",
        f"{ja}: 「{shown}」は金額として読めません。12000 や ¥12,000 のように数字で書いてください",
    )


def _integer(spec: FieldSpec, raw: str) -> int:
    text = _fold(raw)
    if _INTEGER.match(text):
        digits = text.replace(",", "")
        if len(digits) > MAX_DIGITS:
            raise _too_long(spec, raw)
        return int(digits)
    shown, ja = _shown(raw), _label_ja(spec)
    if re.match(r"^[-−]\s*[0-9]", text):
        raise _Refusal(
            f"{spec.label}: '{shown}' is negative; write a whole number of 0 or more such as 3",
            f"{ja}: 「{shown}」はマイナスです。3 のように0以上の整数を書いてください",
        )
    raise _Refusal(
        f"{spec.label}: '{shown}' is not a whole number; write digits such as 3 or 1,000",
        f"{ja}: 「{shown}」は整数として読めません。3 や 1,000 のように数字で書いてください",
    )


def date_of(raw: str) -> datetime.date | None:
    """A typed date (2026-11-30, 2026/11/30, 2026年11月30日, full-width digits); None
    when it is not written as a date. ValueError: written as one, but no such day."""
    text = _fold(raw)
    for pattern in _DATES:
        match = pattern.match(text)
        if match is not None:
            return datetime.date(int(match[1]), int(match[2]), int(match[3]))
    return None


def _date(spec: FieldSpec, raw: str) -> str:
    shown, ja = _shown(raw), _label_ja(spec)
    try:
        found = date_of(raw)
    except ValueError:
        raise _Refusal(
            f"{spec.label}: '{shown}' is not a real date; check the month and day",
            f"{ja}: 「{shown}」は存在しない日付です。月と日を確認してください",
        ) from None
    if found is not None:
        return found.isoformat()
    raise _Refusal(
        f"{spec.label}: '{shown}' is not a date; write it as 2026-11-30",
        f"{ja}: 「{shown}」は日付として読めません。2026-11-30 のように書いてください",
    )


def _text(spec: FieldSpec, raw: str) -> str:
    return raw.strip()


def _pick(spec: FieldSpec, item: str) -> str:
    """The canonical spelling of the choice *item* names, or a refusal listing them."""
    for choice in spec.choices:
        if normalise_key(choice) == normalise_key(item):
            return choice
    shown = _shown(item)
    raise _Refusal(
        f"{spec.label}: '{shown}' is not allowed; write one of: {', '.join(spec.choices)}",
        f"{_label_ja(spec)}: 「{shown}」は選べません。次のいずれかを書いてください: "
        f"{'、'.join(spec.choices)}",
    )


def _choice(spec: FieldSpec, raw: str) -> str:
    return _pick(spec, raw.strip())


def _list(spec: FieldSpec, raw: str) -> list[str]:
    items = [item.strip() for item in _LIST_SPLIT.split(raw) if item.strip()]
    if not items:
        raise _Refusal(
            f"{spec.label}: no items given; separate items with commas such as A, B",
            f"{_label_ja(spec)}: 項目がありません。A、B のように区切って書いてください",
        )
    return [_pick(spec, item) for item in items] if spec.choices else items


_CONVERTERS: dict[FieldKind, Callable[[FieldSpec, str], Any]] = {
    "money": _money, "integer": _integer, "date": _date,
    "text": _text, "choice": _choice, "list": _list,
}

_KIND_HINTS: dict[FieldKind, tuple[str, str]] = {
    "money": ("amount of money, e.g. 12000 or ¥12,000", "金額（例: 12000、¥12,000）"),
    "integer": ("whole number, e.g. 3", "整数（例: 3）"),
    "date": ("date, e.g. 2026-11-30", "日付（例: 2026-11-30、2026年11月30日）"),
    "text": ("text", "文字列"),
    "choice": ("one of", "次のいずれか"),
    "list": ("list separated by commas", "カンマまたは読点（、）区切りの一覧"),
}


def _is_japanese(locale: str) -> bool:
    return re.split(r"[-_.]", locale.strip().casefold())[0] == "ja"


def _hint(spec: FieldSpec, ja: bool) -> str:
    """One "- Label (required): kind. help" line; the '-' keeps it from parsing as a field."""
    en_kind, ja_kind = _KIND_HINTS[spec.kind]
    if ja:
        kind = ja_kind
        if spec.choices:
            listed = "、".join(spec.choices)
            kind = f"{kind}: {listed}" if spec.kind == "choice" else f"{kind}（使える値: {listed}）"
        need = "必須" if spec.required else "任意"
        return f"- {_label_ja(spec)}（{need}）: " + "。".join(
            p for p in (kind, spec.help_ja or spec.help) if p)
    kind = en_kind
    if spec.choices:
        listed = ", ".join(spec.choices)
        kind = f"{kind}: {listed}" if spec.kind == "choice" else f"{kind}, each one of: {listed}"
    need = "required" if spec.required else "optional"
    return f"- {spec.label} ({need}): " + ". ".join(p for p in (kind, spec.help) if p)


def render_form(ct: CaseType, locale: str) -> str:
    """A blank form to paste into a mail body, with hints below the "--" line.

    The hints sit after "--" because parse_form_text stops there, so a user who pastes
    the whole thing, hints included, still sends a clean form.
    """
    ja = _is_japanese(locale)
    lines = [f"{'種別' if ja else 'Type'}: {ct.name}"]
    lines += [f"{_label_ja(spec) if ja else spec.label}: " for spec in ct.fields]
    lines += ["", "--"]
    if ja:
        lines.append(f"{ct.title_ja or ct.title}の書き方。件名に申請の件名を書いてください。"
                     "任意項目は空欄のままで構いません。")
    else:
        lines.append(f"How to fill in the {ct.title} form. Put the case title in the mail "
                     "Subject; leave optional fields blank if they do not apply.")
    lines += [_hint(spec, ja) for spec in ct.fields]
    return "\n".join(lines) + "\n"
