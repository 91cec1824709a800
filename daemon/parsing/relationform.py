"""Reading a `relation` command mail: its subject and its "Field: value" form (SPEC 7).

Department clerks type these by hand, in English or Japanese, through an IME; the form is
forgiving in spelling (full-width colons and digits, 2026年12月10日, 責任者/代理) and strict
in meaning: an unknown or misspelt line is a problem, never silently dropped, because a
dropped "Valid to" would register an open-ended relation nobody asked for.
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from dataclasses import dataclass, field

from daemon.cases.casetypes import normalise_key
from daemon.parsing.reply import extract_reply_text
from daemon.parsing.request import date_of, parse_form_text

Word = str  # register | update | end | list | history | confirm | form

SUBJECT_RE = re.compile(
    r"^\s*(?:(?:re|aw|fw|fwd|返信|転送)\s*:\s*)*(?:relations?|承認関係|関係)\s+"
    r"(register|update|end|list|history|confirm|form|登録|変更|終了|一覧|履歴|確認|書式)"
    r"(?:\s+#?([^\s:]+))?\s*(?::.*)?$", re.IGNORECASE)  # ": done": a reply to an answer
WORDS = {"登録": "register", "変更": "update", "終了": "end", "一覧": "list", "履歴": "history",
         "確認": "confirm", "書式": "form"}

# Normalised key -> the field it fills, in both languages. Not bare "From:"/"To:": those
# are the header lines of a forwarded mail quoted in the text.
KEYS = {
    "approver": "approver", "承認者": "approver",
    "person": "person", "for person": "person", "対象者": "person",
    "unit": "unit", "for unit": "unit", "department": "unit", "対象部署": "unit",
    "部署": "unit", "object": "object", "for": "object", "対象": "object",
    "kind": "kind", "type": "kind", "種別": "kind",
    "valid from": "valid_from", "start": "valid_from", "開始日": "valid_from",
    "valid to": "valid_to", "until": "valid_to",
    "last day": "valid_to", "終了日": "valid_to", "最終日": "valid_to",
    "note": "note", "備考": "note",
}
LABELS = {"approver": ("Approver", "承認者"), "person": ("Person", "対象者"),
          "unit": ("Unit", "対象部署"), "object": ("For", "対象"), "kind": ("Kind", "種別"),
          "valid_from": ("Valid from", "開始日"), "valid_to": ("Valid to", "終了日"),
          "note": ("Note", "備考")}
KINDS = {"responsible": "responsible", "責任者": "responsible", "責任": "responsible",
         "proxy": "proxy", "代理": "proxy", "代理者": "proxy", "代理人": "proxy"}
OPEN = frozenset({"open", "none", "-", "なし", "無期限", "未定", "open-ended"})
# What each command may say; anything else in its form is a problem.
ALLOWED = {"register": frozenset(LABELS), "update": frozenset(
    {"approver", "valid_from", "valid_to", "note"}), "end": frozenset({"valid_to", "note"})}


@dataclass(frozen=True)
class Problem:
    en: str
    ja: str


@dataclass
class RelationForm:
    """The fields given (absent: not in the form; `valid_to` None with `open_ended`: the
    form said the relation has no last day)."""

    given: dict[str, str] = field(default_factory=dict)
    valid_from: datetime.date | None = None
    valid_to: datetime.date | None = None
    open_ended: bool = False
    kind: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.given and not self.problems


def parse_subject(subject: str) -> tuple[Word, str] | None:
    """(`register`, ``) for "relation register", (`update`, `12`) for "承認関係 変更 12"."""
    m = SUBJECT_RE.match(unicodedata.normalize("NFKC", subject))
    if m is None:
        return None
    return WORDS.get(m.group(1), m.group(1).lower()), m.group(2) or ""


def form_text(text: str) -> str:
    """The clerk's own lines: above the quoted original (an Outlook block without `>` too),
    or, when nothing is written above it, the lines that are not quoted (a form filled in
    below the quote)."""
    own = extract_reply_text(text)
    if parse_form_text(own).values:
        return own
    return "\n".join(line for line in text.splitlines()
                     if line.strip() and not line.lstrip().startswith(">")
                     and extract_reply_text(line))  # not an attribution or separator line


def parse_form(text: str, word: Word) -> RelationForm:
    raw = parse_form_text(form_text(text))
    values = dict(raw.values)
    if raw.type_key is not None:  # "Type: proxy" is how some write the kind
        values.setdefault("type", raw.type_key)
    form = RelationForm()
    for key, value in values.items():
        name = KEYS.get(normalise_key(key))
        if name is None:
            form.problems.append(Problem(
                f"'{key}' is not a line of the relation form ("
                + ", ".join(en for en, _ in LABELS.values()) + ")",
                f"「{key}」は承認関係の書式の項目ではありません（"
                + "、".join(ja for _, ja in LABELS.values()) + "）"))
            continue
        if not value.strip():
            continue  # a line left blank in the form: not given
        if name not in ALLOWED.get(word, frozenset()):
            en, ja = LABELS[name]
            form.problems.append(Problem(
                f"{en} cannot be changed by \"relation {word}\": end the relation and "
                "register a new one", f"{ja}は変更できません。関係を終了して新しく登録して"
                "ください"))
            continue
        form.given[name] = " ".join(value.split())
    _read_values(form)
    return form


def _read_values(form: RelationForm) -> None:
    kind = form.given.get("kind")
    if kind is not None:
        form.kind = KINDS.get(unicodedata.normalize("NFKC", kind).casefold())
        if form.kind is None:
            form.problems.append(Problem(
                f"Kind: '{kind}' is neither responsible nor proxy",
                f"種別: 「{kind}」は「責任者」でも「代理」でもありません"))
    for name in ("valid_from", "valid_to"):
        value = form.given.get(name)
        if value is None:
            continue
        en, ja = LABELS[name]
        if name == "valid_to" and unicodedata.normalize("NFKC", value).casefold() in OPEN:
            form.open_ended = True
            continue
        try:
            day = date_of(value)
        except ValueError:
            form.problems.append(Problem(f"{en}: '{value}' is not a real date",
                                         f"{ja}: 「{value}」は存在しない日付です"))
            continue
        if day is None:
            form.problems.append(Problem(
                f"{en}: '{value}' is not a date; write it as 2026-12-31",
                f"{ja}: 「{value}」は日付として読めません。2026-12-31 のように書いてください"))
        elif name == "valid_from":
            form.valid_from = day
        else:
            form.valid_to = day


def blank_form(locale: str, today: datetime.date) -> str:
    """The form a clerk fills in for `relation register`."""
    ja = locale == "ja"
    rows = [("approver", ""), ("person", ""), ("unit", ""),
            ("kind", "責任者" if ja else "responsible"), ("valid_from", today.isoformat()),
            ("valid_to", ""), ("note", "")]
    return "\n".join(f"{LABELS[k][1 if ja else 0]}: {v}".rstrip() for k, v in rows)
