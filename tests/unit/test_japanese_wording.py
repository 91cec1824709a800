"""Every Japanese mail, on every branch, rendered with Japanese names and titles, read the way
a Japanese business-mail reader reads it.

The data is Japanese (names, titles, reasons) because that is what exposes a template's own
spacing: `{{ by }} により` looks harmless with "Sato" and reads "佐藤 により" in real mail.
What is checked mechanically:
- no half-width space between two Japanese characters (except after a command word the
  parser reads as `word argument`, e.g. 「承認関係 登録」, and the 宛名 line `田中太郎 様`);
- no sentence broken over two lines (a line ending in a Japanese character that does not end
  a sentence, followed by a line that carries the same running text on at column 0);
- 却下 never in a mail about a return (差し戻し), 差し戻し never in a mail about a rejection;
- nothing about purchases (購買, 発注, 購入) in a mail about a travel case;
- a count announced for a list ("2件") matches the items listed.
"""

from __future__ import annotations

import itertools
import re
from copy import deepcopy
from typing import Any

import pytest

from daemon.cases.commands import ALIASES
from daemon.cases.conditioncommands import WORDS as CONDITION_WORDS
from daemon.parsing.relationform import WORDS as RELATION_WORDS
from daemon.routing.resolvers import GAPS
from tests.unit.test_every_template import AT, BASE, NAMES, TOKEN, renders

_J = "\u3000-\u303f\u3040-\u30ff\u3400-\u9fff\uff01-\uff60"
JAPANESE = re.compile(f"[{_J}]")
# Words that open a command typed as `word argument` (a space the parser needs).
COMMAND_WORDS = sorted({*ALIASES, *RELATION_WORDS, *CONDITION_WORDS, "承認関係", "関係",
                        "ダイジェスト", "条件"}, key=len, reverse=True)
_SPACE = re.compile(f"(?<=[{_J}]) +(?=[{_J}])")
# A sentence ends with 。！？; a line announcing what follows ends with a colon.
_ENDS = "。！？：:"
_FIELD = re.compile(r"^[^\s:：。、]{1,16}[:：]")  # `件名: …`, `理由: …`: a record line

VIEW_JA: dict[str, Any] = {
    **BASE["view"], "title": "大阪出張（関西の顧客レビュー）", "type_title": "出張",
    "requester": "田中太郎", "amount": "180,000円",
    "fields": [{"label": "金額", "value": "180,000円"}, {"label": "出張先", "value": "大阪"}],
    "approvals": [{"name": "佐藤課長", "at": AT, "reason": "問題ありません"},
                  {"name": "鈴木部長", "at": AT, "reason": ""}],
    "attachments": [{"filename": "見積書.pdf", "size": 10, "sha256": "ab" * 32}],
    "execution": {**BASE["view"]["execution"], "destination": "大阪旅行社"},
}
JA: dict[str, Any] = {
    **deepcopy(BASE), "view": VIEW_JA, "case": {"number": "R-2026-000123", "title": "大阪出張"},
    "recipient": "田中太郎", "note_detail": "佐藤課長", "next": "鈴木部長", "by": "佐藤課長",
    "to": "鈴木部長", "reason": "金額が予算を超えています", "asked": "佐藤課長",
    "decided_by": "佐藤課長", "waiting": ["佐藤課長"],
    "problems": ["金額: 「12,0OO」は金額として読めません"],
    "changes": ["金額: 180,000円 → 170,000円"], "given": "りょこう", "type_title": "出張",
    "types": [{"name": "travel", "title": "出張"}], "subject": "大阪出張",
    "requester": "田中太郎", "partner": "神戸精密", "title": "ブラケット図面",
    "step": "課長", "detail": "この役職の人がいません", "approver": "佐藤課長",
    "object_name": "田中太郎", "owner": "佐藤課長", "why": "組織変更",
    "reasons": [{"text": "自分自身を承認者として登録することはできません", "code": "",
                 "facts": {}}],
    "misses": [{"condition": "金額", "given": "600,000円", "required": "500,000円以下",
                "documents": ["見積書.pdf"]}],
    "notes": ["金額を下げました。"], "alert_subject": "ディスクが一杯です",
    "alert_body": "スプールが一杯です。", "form": "種別: travel\n金額: ",
    "items": [{**BASE["items"][0], "title": "大阪出張", "type_title": "出張",
               "requester": "田中太郎", "amount": "180,000円"} for _ in range(3)],
    "open_items": [{"number": "R-2026-000124", "title": "展示会", "requester": "田中太郎"}],
    "results": [{**r, "title": r["title"] and "大阪出張", "reason": "高すぎます"}
                if "reason" in r else {**r, "title": r["title"] and "展示会"}
                for r in deepcopy(BASE["results"])],
}
for _r in JA["results"]:
    if _r.get("detail"):
        _r["detail"] = {**_r["detail"], "decided_by": "佐藤課長", "asked": "佐藤課長"}

# Mails about one decision: the other decision's word has no place in them.
REJECT_MAILS = {"rejected", "rejected_conditions", "reject_notice", "approval_undone"}
RETURN_MAILS = {"returned"}
PURCHASE = re.compile("購買|発注|購入")


def _japanese_mails(name: str) -> list[tuple[str, str, str]]:
    """(where, subject, body) for every branch of one ja template."""
    out = []
    for label, _text, mail in renders(name, "ja", JA):
        out.append((f"ja/{name}.txt [{label}]", mail.subject.removesuffix(f" [#{TOKEN}]"),
                    mail.body))
    assert out, name
    return out


def _stray_spaces(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        if re.fullmatch(r"\S+ (様|御中)", line.strip()):
            continue  # the 宛名 line: 田中太郎 様
        for m in _SPACE.finditer(line):
            before = line[: m.start()]
            if any(before.endswith(w) for w in COMMAND_WORDS):
                continue
            found.append(line)
    return found


def _broken_sentences(body: str) -> list[str]:
    lines = body.splitlines()
    found = []
    for this, after in itertools.pairwise(lines):
        end = this.rstrip()
        if not end or not JAPANESE.match(end[-1]) or end[-1] in _ENDS:
            continue
        if this[:1].isspace() or this.startswith(("-", "・")):
            continue  # a list item or an indented block ends where it likes
        if not after.strip() or after[:1].isspace() or after.startswith(("-", "・")):
            continue
        if _FIELD.match(this) and _FIELD.match(after):
            continue  # one record line after another
        found.append(f"{this!r} / {after!r}")
    return found


@pytest.mark.parametrize("name", NAMES)
def test_no_space_between_japanese_words(name: str) -> None:
    for where, subject, body in _japanese_mails(name):
        bad = _stray_spaces(subject) + _stray_spaces(body)
        assert not bad, f"{where}: a space between Japanese words: {bad}"


@pytest.mark.parametrize("name", NAMES)
def test_no_line_break_inside_a_sentence(name: str) -> None:
    for where, _subject, body in _japanese_mails(name):
        bad = _broken_sentences(body)
        assert not bad, f"{where}: a sentence broken over two lines: {bad}"


@pytest.mark.parametrize("locale", ["ja", "en"])
@pytest.mark.parametrize("name", NAMES)
def test_every_list_item_on_its_own_line(name: str, locale: str) -> None:
    """A `{% endif %}` ending an item's line eats its newline: two items on one line."""
    for label, _text, mail in renders(name, locale, JA if locale == "ja" else None):
        joined = [x for x in mail.body.splitlines() if re.search(r"\S  - ", x)]
        assert not joined, f"{locale}/{name}.txt [{label}]: list items run together: {joined}"


@pytest.mark.parametrize("name", NAMES)
def test_paragraphs_are_parted_by_one_blank_line(name: str) -> None:
    for where, _subject, body in _japanese_mails(name):
        assert "\n\n\n" not in body, f"{where}: two blank lines in a row:\n{body}"


@pytest.mark.parametrize("name", NAMES)
def test_reject_and_return_keep_their_words(name: str) -> None:
    for where, subject, body in _japanese_mails(name):
        text = subject + "\n" + body
        decision = re.search(r"decision='(\w+)'", where)
        if name in REJECT_MAILS or (name == "decision_confirmed" and decision
                                    and decision.group(1) == "reject"):
            assert "差し戻" not in text, f"{where}: a rejection called 差し戻し:\n{text}"
        if name in RETURN_MAILS or (name == "decision_confirmed" and decision
                                    and decision.group(1) == "return"):
            assert "却下" not in text, f"{where}: a return called 却下:\n{text}"


@pytest.mark.parametrize("name", NAMES)
def test_travel_mail_says_nothing_of_purchases(name: str) -> None:
    assert JA["view"]["type"] == "travel"
    for where, subject, body in _japanese_mails(name):
        assert not PURCHASE.search(subject + body), f"{where}: purchase wording:\n{body}"


def test_a_broken_sentence_is_found() -> None:
    """The rule is not trivially satisfied: it finds the break a template used to have."""
    assert _broken_sentences("未実行: 人による承認のため、ringi は\n実行依頼を送っていません。")
    assert _broken_sentences("実行依頼を\n大阪旅行社に送れませんでした。")
    assert not _broken_sentences("件名: 大阪出張\n種別: 出張")
    assert _stray_spaces("申請は 佐藤課長 により却下されました。")
    assert not _stray_spaces("件名「承認関係 登録」で送ってください。")


def _listed_after(body: str, heading: re.Pattern[str]) -> tuple[int, int]:
    """(count the heading announces, items listed under it)."""
    lines = body.splitlines()
    for i, line in enumerate(lines):
        m = heading.search(line)
        if not m:
            continue
        items = 0
        for after in lines[i + 1:]:
            if after.startswith("  - "):
                items += 1
            elif after.strip() and not after.startswith(" "):
                break
        return int(m.group(1)), items
    raise AssertionError(f"no {heading.pattern!r} in:\n{body}")


def test_counts_match_the_lists_that_follow() -> None:
    for where, subject, body in _japanese_mails("digest"):
        if "[base]" in where:
            announced = re.search(r"申請が(\d+)件あります", body)
            listed = re.findall(r"^申請 R-\S+: ", body, re.M)
            assert announced and int(announced.group(1)) == len(listed) == 3, body
            assert "3件" in subject
    for where, subject, body in _japanese_mails("digest_reply"):
        if "[base]" not in where:
            continue
        done = len(re.findall(r"^  R-\S+ (承認|却下|差し戻し|保留)", body, re.M))
        refused = body.split("実施しませんでした:")[1].count("\n  R-")
        assert f"実施{done}件" in subject and f"未実施{refused}件" in subject, (subject, body)
    for where, _subject, body in _japanese_mails("reply_error"):
        if "[base]" in where:
            announced, listed = _listed_after(body, re.compile(r"添付資料（(\d+) ?件）"))
            assert announced == listed, body


def test_several_next_approvers_each_get_their_honorific() -> None:
    """`next` comes joined with ", " when several are asked at once (合議)."""
    ctx = {**deepcopy(JA), "next": "鈴木部長, 高橋部長"}
    for name in ("ack", "progress", "resumed"):
        body = next(m.body for label, _t, m in renders(name, "ja", ctx) if label == "base")
        assert "鈴木部長さん、高橋部長さん" in body, body


@pytest.mark.parametrize("gap", GAPS)
def test_every_held_reason_reads_in_japanese(gap: str) -> None:
    """The code names why a case is held in English (resolvers.GAPS); the reader does not."""
    body = next(m.body for label, _t, m in renders("held", "ja", {**deepcopy(JA), "reason": gap})
                if label == "base")
    line = next(x for x in body.splitlines() if x.startswith("理由: "))
    assert not re.search("[A-Za-z]", line), line


def test_a_hold_reason_built_in_code_reads_in_japanese() -> None:
    ctx = {**deepcopy(JA), "reason": "Sato's approval conditions are not met",
           "reason_ja": "佐藤さんの承認条件を満たしていないため、鈴木さんが再検討します"}
    body = next(m.body for label, _t, m in renders("hold", "ja", ctx) if label == "base")
    assert "理由: 佐藤さんの承認条件を満たしていないため" in body and "Sato's" not in body


def test_only_a_purchase_is_told_to_place_the_order() -> None:
    """The one purchase remark is conditional on the type, in both languages."""
    for locale in ("ja", "en"):
        for kind, expected in (("purchase", True), ("travel", False)):
            view = {**deepcopy(VIEW_JA), "type": kind,
                    "execution": {"state": "not_executed", "reason": "not_enabled"}}
            body = next(m.body for label, _t, m in renders("approved", locale,
                                                          {**deepcopy(JA), "view": view})
                        if label == "base")
            said = bool(re.search("発注|order with the supplier", body))
            assert said == expected, (locale, kind, body)
