"""Subjects, times and refused forms as a reader sees them (issue 14, items 7, 8, 10)."""

from __future__ import annotations

import datetime as dt
import pathlib

from daemon.cases.casetypes import CaseType, load_case_types
from daemon.notify.wording import (
    SUBJECT_MAX,
    case_subject,
    greeting,
    local_time,
    money_text,
)
from daemon.parsing.prefill import prefilled_form
from daemon.parsing.request import parse_form_text, validate_fields

RULES = pathlib.Path(__file__).resolve().parents[2] / "rules" / "casetypes"
TYPES = load_case_types(RULES)
TOKEN = "abcdefghijklmnopqrstuvwxyz234567"
EN = {"number": "R-2026-000123", "type_title": "Purchase", "requester": "Taro Tanaka",
      "amount": money_text("180000", "en"), "title": "Laptop for Kyoto"}
JA = {**EN, "type_title": "購買", "requester": "田中 太郎",
      "amount": money_text("180000", "ja"), "title": "京都のノートPC"}


def purchase() -> CaseType:
    ct = TYPES.get("purchase")
    assert ct is not None
    return ct


def test_amounts_are_written_as_each_reader_writes_them() -> None:
    assert money_text("180000", "en") == "¥180,000"
    assert money_text("180000", "ja") == "180,000円"
    assert money_text("12000.5", "en") == "¥12,000.5"
    assert money_text(None, "en") == "" and money_text("", "ja") == ""


def test_subject_names_number_type_requester_amount_and_title_token_last() -> None:
    assert case_subject(EN, "Approved", "en", TOKEN) == (
        "[R-2026-000123] Approved: Purchase / Taro Tanaka / ¥180,000 / "
        f"Laptop for Kyoto [#{TOKEN}]")
    assert case_subject(JA, "承認依頼", "ja", TOKEN) == (
        "[R-2026-000123] 承認依頼: 購買 / 田中 太郎 / 180,000円 / 京都のノートPC "
        f"[#{TOKEN}]")
    # A longer label leaves less room: the title is shortened, with an ellipsis.
    assert case_subject(EN, "Approval needed", "en", TOKEN) == (
        "[R-2026-000123] Approval needed: Purchase / Taro Tanaka / ¥180,000 / "
        f"Laptop for… [#{TOKEN}]")


def test_a_type_without_amount_leaves_it_out() -> None:
    view = {**EN, "type_title": "Design release", "amount": ""}
    assert case_subject(view, "Approved", "en") == \
        "[R-2026-000123] Approved: Design release / Taro Tanaka / Laptop for Kyoto"
    assert "None" not in case_subject({**view, "amount": None}, "Approved", "en")


def test_a_long_title_is_shortened_never_the_number_or_token() -> None:
    long = "Quarterly replacement of every laptop in the Kyoto, Osaka and Kobe offices " * 3
    for view, label, locale in ((EN, "Approval needed", "en"), (JA, "承認依頼", "ja")):
        subject = case_subject({**view, "title": long}, label, locale, TOKEN)
        shown = subject.removesuffix(f" [#{TOKEN}]")
        assert subject.startswith("[R-2026-000123] ") and subject.endswith(f"[#{TOKEN}]")
        assert shown.endswith("…") and len(shown) <= SUBJECT_MAX, subject
        assert "/ Quar" in shown  # the title's start is kept
    ja_title = "京都・大阪・神戸の全事業所におけるノートパソコンの一括入れ替え" * 3
    subject = case_subject({**JA, "title": ja_title}, "承認依頼", "ja")
    assert len(subject) == SUBJECT_MAX and subject.endswith("…"), subject
    assert "/ 京都・大阪・神戸の全事業所" in subject
    # A label so long that no title fits: the title goes, the number stays first.
    label = "A very long label that leaves no room for anything else at all, really"
    subject = case_subject(EN, label, "en", TOKEN)
    assert subject.startswith(f"[R-2026-000123] {label[:40]}") and \
        subject.endswith(f"… [#{TOKEN}]") and len(subject) == SUBJECT_MAX + len(f" [#{TOKEN}]")


def test_greeting_by_name_or_politely_without_one() -> None:
    assert greeting("Taro Tanaka", "en") == "Dear Taro Tanaka,"
    assert greeting("田中 太郎", "ja") == "田中 太郎 様"
    assert greeting("", "en") == "Hello," and greeting(None, "ja") == "ご担当者様"


def test_times_in_the_company_zone_in_the_reader_format() -> None:
    at = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)
    assert local_time(at, "Asia/Tokyo", "en") == "3 Dec 2026 18:00 (Asia/Tokyo)"
    assert local_time(at, "Asia/Tokyo", "ja") == "2026年12月3日 18:00"
    assert local_time(at, "Europe/London", "ja") == "2026年12月3日 09:00 (Europe/London)"
    # A naive time is the store's UTC; an ISO string is read; a day stays a day.
    assert local_time(at.replace(tzinfo=None), "Asia/Tokyo", "en") == \
        "3 Dec 2026 18:00 (Asia/Tokyo)"
    assert local_time(at.isoformat(), "Asia/Tokyo", "ja") == "2026年12月3日 18:00"
    assert local_time("2027-04-30", "Asia/Tokyo", "en") == "30 Apr 2027"
    assert local_time(dt.date(2027, 4, 30), "Asia/Tokyo", "ja") == "2027年4月30日"
    # Crossing midnight into the next day in Tokyo.
    late = dt.datetime(2026, 12, 31, 16, 30, tzinfo=dt.UTC)
    assert local_time(late, "Asia/Tokyo", "en") == "1 Jan 2027 01:30 (Asia/Tokyo)"
    assert local_time(None, "Asia/Tokyo", "en") == ""


BODY = ("Hello,\n\nType: purchase\nItem: Laptop\nSupplier: ACME\nQuantity: 1\n"
        "Amount: 12,0OO\n\nThanks\n-- \nTaro\n")


def test_a_refused_request_comes_back_as_written_with_the_wrong_line_marked() -> None:
    ct = purchase()
    form = parse_form_text(BODY)
    _, problems = validate_fields(ct, form)
    text = prefilled_form(ct, BODY, form, problems, "en")
    lines = text.splitlines()
    assert lines[:5] == ["Hello,", "", "Type: purchase", "Item: Laptop", "Supplier: ACME"]
    marked = next(ln for ln in lines if ln.startswith("Amount: 12,0OO"))
    assert marked.startswith("Amount: 12,0OO   <-- '12,0OO' is not an amount of money; "
                             "write digits such as 12000"), marked
    assert "Category:    <-- this field is required" in text  # missing required line
    assert "Taro" not in text.split("\n--\n")[0]  # the signature is not part of the form
    # Correcting the one value (the marks may stay) gives a clean request.
    fixed = text.replace("Amount: 12,0OO", "Amount: 12000").replace(
        "Category: ", "Category: equipment")
    values, again = validate_fields(ct, parse_form_text(fixed))
    assert again == [] and values["amount"] == "12000", again


def test_japanese_marks_and_a_repeated_line() -> None:
    ct = purchase()
    body = ("種別: purchase\n品名: ノートPC\n購入先: ACME\n数量: 一\nAmount: 12000\n"
            "金額: 13000\n区分: equipment\n")
    form = parse_form_text(body)
    _, problems = validate_fields(ct, form)
    text = prefilled_form(ct, body, form, problems, "ja")
    assert "数量: 一   ←「一」は整数として読めません" in text, text
    assert "Amount: 12000   ←複数回書かれています（5, 6行目）" in text, text
    assert "金額: 13000   ←複数回書かれています（5, 6行目）" in text, text
