"""Tests for parsing and validating the "Field: value" form in a request mail body."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.cases.casetypes import CaseType, FieldSpec, load_case_types
from daemon.parsing.request import (
    TYPE_KEYS,
    FieldProblem,
    RawForm,
    parse_form_text,
    render_form,
    validate_fields,
)

SAMPLES = pathlib.Path(__file__).resolve().parents[2] / "rules" / "casetypes"
REGISTRY = load_case_types(SAMPLES)


def sample(name: str) -> CaseType:
    ct = REGISTRY.get(name)
    assert ct is not None
    return ct


# One optional field of every kind, so each converter can be tested alone.
KINDS = CaseType(
    name="kinds", title="Kinds", title_ja="種類", description="", description_ja="",
    fields=(
        FieldSpec("amount", "Amount", "金額", "money", False),
        FieldSpec("count", "Count", "件数", "integer", False),
        FieldSpec("day", "Day", "日付", "date", False),
        FieldSpec("note", "Note", "メモ", "text", False),
        FieldSpec("colour", "Colour", "色", "choice", False, ("Red", "Green")),
        FieldSpec("tags", "Tags", "タグ", "list", False),
        FieldSpec("sizes", "Sizes", "サイズ", "list", False, ("S", "M", "L")),
    ),
    source="kinds.toml",
)


def form(**values: str) -> RawForm:
    return RawForm(type_key="kinds", values=values,
                   line_of={k: n for n, k in enumerate(values, 1)}, unknown_lines=[])


# --- parse_form_text -------------------------------------------------------------------


def test_type_keys() -> None:
    assert {"type", "case type", "種別", "申請種別"} == TYPE_KEYS


@pytest.mark.parametrize(
    ("body", "type_key", "values", "unknown"),
    [
        pytest.param("Type: travel\nAmount: 12000\n", "travel", {"amount": "12000"}, [],
                     id="ascii-colon"),
        pytest.param("種別：travel\n金額：12000\n", "travel", {"金額": "12000"}, [],
                     id="full-width-colon"),
        pytest.param("Case  Type : purchase\n", "purchase", {}, [], id="case-type-key"),
        pytest.param("申請種別: purchase\n", "purchase", {}, [], id="japanese-type-key"),
        pytest.param("TYPE:\nAmount: 1\n", None, {"amount": "1"}, [], id="blank-type"),
        pytest.param("Note:\n", None, {"note": ""}, [], id="blank-value-kept"),
        pytest.param("  COST   Centres :  A, B  \n", None, {"cost centres": "A, B"}, [],
                     id="key-normalised"),
        pytest.param("Ａｍｏｕｎｔ　：　５\n", None, {"amount": "５"}, [],
                     id="full-width-key-and-spaces"),
        pytest.param("Notes: see https://example.com/x\n", None,
                     {"notes": "see https://example.com/x"}, [], id="url-in-value"),
        pytest.param("Notes: first\n  second\n\tthird\nAmount: 1\n", None,
                     {"notes": "first\nsecond\nthird", "amount": "1"}, [], id="continuation"),
        pytest.param("Notes:\n   only line\n", None, {"notes": "only line"}, [],
                     id="continuation-of-blank"),
        pytest.param("Notes: a\n\n  b\n", None, {"notes": "a"}, ["b"],
                     id="blank-line-ends-continuation"),
        pytest.param("  Amount: 1\n", None, {"amount": "1"}, [], id="indented-first-line"),
        pytest.param("Type: travel\n  more\n", "travel", {}, ["more"],
                     id="type-line-has-no-continuation"),
        pytest.param("Amount: 1\n--\nPhone: 0312345678\n", None, {"amount": "1"}, [],
                     id="signature-cut"),
        pytest.param("Amount: 1\n-- \nPhone: 0312345678\n", None, {"amount": "1"}, [],
                     id="signature-cut-trailing-space"),
        pytest.param("Amount: 1\n---\nPhone: 1\n", None, {"amount": "1", "phone": "1"}, ["---"],
                     id="three-dashes-not-signature"),
        pytest.param("Amount: 1\n> Amount: 2\nPurpose: x\n", None, {"amount": "1"}, [],
                     id="quoted-line-cut"),
        pytest.param("Amount: 1\n  > Amount: 2\n", None, {"amount": "1"}, [],
                     id="indented-quote-cut"),
        pytest.param("Amount: 1\nAmount: 2\n", None, {"amount": "2"}, [], id="last-wins"),
        pytest.param("Hello team,\nAmount: 1\n- Hint: x\nThanks!\n", None, {"amount": "1"},
                     ["Hello team,", "- Hint: x", "Thanks!"], id="unknown-lines"),
        pytest.param("x" * 61 + ": y\n", None, {}, ["x" * 61 + ": y"], id="key-too-long"),
        pytest.param("x" * 60 + ": y\n", None, {"x" * 60: "y"}, [], id="key-longest"),
        pytest.param("Type: travel\r\nAmount: 1\r\n", "travel", {"amount": "1"}, [],
                     id="crlf"),
    ],
)
def test_parse_form_text(body: str, type_key: str | None, values: dict[str, str],
                         unknown: list[str]) -> None:
    parsed = parse_form_text(body)
    assert parsed.type_key == type_key
    assert parsed.values == values
    assert parsed.unknown_lines == unknown


def test_parse_line_numbers() -> None:
    parsed = parse_form_text("Hi\nType: travel\n\nAmount: 1\nNotes: a\n  b\nAmount: 2\n")
    assert parsed.line_of == {"amount": 7, "notes": 5}


# --- validate_fields: each kind --------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("amount", "12000", "12000"),
        ("amount", "12,000", "12000"),
        ("amount", "1,234,567", "1234567"),
        ("amount", "¥12,000", "12000"),
        ("amount", "￥12,000", "12000"),
        ("amount", "¥ 12000", "12000"),
        ("amount", "12000円", "12000"),
        ("amount", "１２，０００円", "12000"),
        ("amount", "JPY 12,000", "12000"),
        ("amount", "12000 jpy", "12000"),
        ("amount", "12000.50", "12000.5"),
        ("amount", "12000.05", "12000.05"),
        ("amount", "12000.00", "12000"),
        ("amount", "0", "0"),
        ("count", "3", 3),
        ("count", "３", 3),
        ("count", "0", 0),
        ("count", "1,000", 1000),
        ("count", "１，０００", 1000),
        ("day", "2026-11-30", "2026-11-30"),
        ("day", "2026/11/30", "2026-11-30"),
        ("day", "2026/1/5", "2026-01-05"),
        ("day", "2026年11月30日", "2026-11-30"),
        ("day", "２０２６年１１月３０日", "2026-11-30"),
        ("day", "2026年 1月 5日", "2026-01-05"),
        ("day", "2026 年 1 月 5 日", "2026-01-05"),
        ("day", "2028-02-29", "2028-02-29"),
        ("note", "  hello  ", "hello"),
        ("note", "line one\nline two", "line one\nline two"),
        ("colour", "Red", "Red"),
        ("colour", "red", "Red"),
        ("colour", " GREEN ", "Green"),
        ("colour", "ｒｅｄ", "Red"),
        ("sizes", "m ,  l", ["M", "L"]),
        ("tags", "a, b ,c", ["a", "b", "c"]),
        ("tags", "営業部、開発部；総務", ["営業部", "開発部", "総務"]),
        ("tags", "a;;b,", ["a", "b"]),
        ("tags", "a\nb", ["a", "b"]),
        ("tags", "CC-100", ["CC-100"]),
        ("sizes", "s, M", ["S", "M"]),
    ],
)
def test_accepted_values(field: str, raw: str, expected: Any) -> None:
    clean, problems = validate_fields(KINDS, form(**{field: raw}))
    assert problems == []
    assert clean == {field: expected}
    assert type(clean[field]) is type(expected)


@pytest.mark.parametrize(
    ("field", "raw", "message"),
    [
        ("amount", "twelve", "Amount: 'twelve' is not an amount of money; "
                             "write digits such as 12000 or ¥12,000"),
        ("amount", "-500", "Amount: '-500' is negative; write an amount of 0 or more such as "
                           "12000"),
        ("amount", "¥-500", "Amount: '¥-500' is negative; write an amount of 0 or more such as "
                            "12000"),
        ("amount", "−500", "Amount: '−500' is negative; write an amount of 0 or more such as "
                           "12000"),
        ("amount", "12,00", "Amount: '12,00' is not an amount of money; "
                            "write digits such as 12000 or ¥12,000"),
        ("amount", "12000.505", "Amount: '12000.505' is not an amount of money; "
                                "write digits such as 12000 or ¥12,000"),
        ("amount", "$100", "Amount: '$100' is not an amount of money; "
                           "write digits such as 12000 or ¥12,000"),
        ("count", "-3", "Count: '-3' is negative; write a whole number of 0 or more such as 3"),
        ("count", "three", "Count: 'three' is not a whole number; "
                           "write digits such as 3 or 1,000"),
        ("count", "3.5", "Count: '3.5' is not a whole number; write digits such as 3 or 1,000"),
        ("count", "1,00", "Count: '1,00' is not a whole number; write digits such as 3 or 1,000"),
        ("day", "2027-02-29", "Day: '2027-02-29' is not a real date; check the month and day"),
        ("day", "2026/02/30", "Day: '2026/02/30' is not a real date; check the month and day"),
        ("day", "2026年13月1日",
         "Day: '2026年13月1日' is not a real date; check the month and day"),
        ("day", "30/11/2026", "Day: '30/11/2026' is not a date; write it as 2026-11-30"),
        ("day", "next week", "Day: 'next week' is not a date; write it as 2026-11-30"),
        ("colour", "blue", "Colour: 'blue' is not allowed; write one of: Red, Green"),
        ("sizes", "S, XL", "Sizes: 'XL' is not allowed; write one of: S, M, L"),
        ("tags", ", ,", "Tags: no items given; separate items with commas such as A, B"),
    ],
)
def test_refused_values(field: str, raw: str, message: str) -> None:
    clean, problems = validate_fields(KINDS, form(**{field: raw}))
    assert clean == {}
    assert [(p.field, p.message) for p in problems] == [(field, message)]
    label_ja = next(f.label_ja for f in KINDS.fields if f.name == field)
    assert problems[0].message_ja.startswith(f"{label_ja}: ")


@pytest.mark.parametrize(
    ("field", "raw", "message_ja"),
    [
        ("amount", "twelve", "金額: 「twelve」は金額として読めません。12000 や ¥12,000 のように"
                             "数字で書いてください"),
        ("amount", "-1", "金額: 「-1」はマイナスです。12000 のように0以上の金額を書いてください"),
        ("count", "三",
         "件数: 「三」は整数として読めません。3 や 1,000 のように数字で書いてください"),
        ("day", "2027年2月29日",
         "日付: 「2027年2月29日」は存在しない日付です。月と日を確認してください"),
        ("colour", "青", "色: 「青」は選べません。次のいずれかを書いてください: Red、Green"),
    ],
)
def test_refused_values_japanese(field: str, raw: str, message_ja: str) -> None:
    _, problems = validate_fields(KINDS, form(**{field: raw}))
    assert [p.message_ja for p in problems] == [message_ja]


def test_long_value_is_shortened_in_message() -> None:
    raw = "9" * 30 + " items\n" + "x" * 30
    _, problems = validate_fields(KINDS, form(count=raw))
    assert problems[0].message == (
        "Count: '" + "9" * 30 + " items xx…' is not a whole number; "
        "write digits such as 3 or 1,000"
    )


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("amount", "9" * 19),
        ("amount", "1" + "0" * 18 + ".50"),
        ("amount", "¥" + "9" * 5000),  # past Python's 4,300-digit int limit
        ("amount", "9" * 300_000 + "円"),
        ("count", "1" * 19),
        ("count", "1" * 4301),
        ("count", "１" * 5000),  # full-width digits fold to ASCII first
        ("count", ",".join(["999"] * 2000)),
    ],
)
def test_numbers_longer_than_any_column_are_refused(field: str, raw: str) -> None:
    clean, problems = validate_fields(KINDS, form(**{field: raw}))
    assert clean == {}
    label = next(f for f in KINDS.fields if f.name == field)
    assert [p.field for p in problems] == [field]
    assert problems[0].message.startswith(f"{label.label}: '")
    assert problems[0].message.endswith("' has more than 18 digits; check the number")
    assert problems[0].message_ja.endswith("は18桁を超えています。数字を確認してください")
    assert len(problems[0].message) < 120  # the value is quoted shortened, not whole


def test_eighteen_digits_still_read() -> None:
    """The positive control: the bound is the columns' own, not lower."""
    clean, problems = validate_fields(
        KINDS, form(amount="999,999,999,999,999,999.99", count="9" * 18))
    assert problems == []
    assert clean == {"amount": "999999999999999999.99", "count": 10**18 - 1}


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(["amount", "count"]),
       st.sampled_from(["", "¥", "JPY ", "-", "０"]),
       st.integers(1, 6000), st.sampled_from(["", ",", "１", "9"]),
       st.sampled_from(["", ".5", "円", " yen", ".999"]))
def test_digit_strings_of_any_length_get_a_value_or_a_problem(
        field: str, prefix: str, length: int, filler: str, suffix: str) -> None:
    """Whatever the length, validation answers (never raises) and a number it accepts
    fits the columns it will be stored in."""
    raw = prefix + "".join("9" if filler == "" or i % 4 else filler for i in range(length)) \
        + suffix
    clean, problems = validate_fields(KINDS, form(**{field: raw}))
    if problems:
        assert clean == {} and len(problems) == 1 and problems[0].field == field
        assert len(problems[0].message) < 200
    else:
        value = clean[field]
        assert len(str(value).partition(".")[0]) <= 18


# --- validate_fields: whole forms ------------------------------------------------------

TRAVEL_LABELS = "Destination, Purpose, Departure date, Return date, Amount, Receipts, " \
    "Transport, Notes"
TRAVEL_LABELS_JA = "出張先、目的、出発日、帰着日、金額、領収書枚数、交通手段、備考"


def test_missing_required_fields_both_languages() -> None:
    _, problems = validate_fields(sample("travel"),
                                  parse_form_text("Destination: Osaka\nAmount:\n"))
    assert [p.field for p in problems] == ["purpose", "departure_date", "return_date", "amount"]
    assert problems[-1] == FieldProblem(
        "amount",
        "Amount: this field is required; add a line 'Amount: ...' with a value",
        "金額: 必須項目です。「金額: …」の行に値を書いてください",
    )


def test_unknown_field_both_languages() -> None:
    body = ("Destination: Osaka\nPurpose: visit\nDeparture date: 2026-11-30\n"
            "Return date: 2026-12-01\nAmount: 1\nColour: red\nSize:\n")
    clean, problems = validate_fields(sample("travel"), parse_form_text(body))
    assert problems == [FieldProblem(
        "colour",
        f"Unknown field 'colour'; the fields for Travel expense are: {TRAVEL_LABELS}",
        f"不明な項目「colour」です。出張旅費精算の項目は次のとおりです: {TRAVEL_LABELS_JA}",
    )]
    assert clean["amount"] == "1"


@pytest.mark.parametrize(
    "key",
    ["cost_centres", "cost centres", "Cost Centres", "原価センター", "ＣＯＳＴ　ＣＥＮＴＲＥＳ"],
)
def test_field_matched_by_name_label_or_japanese_label(key: str) -> None:
    body = ("Item: pen\nSupplier: Askul\nQuantity: 3\nAmount: 300\nCategory: consumables\n"
            f"{key}: CC-1, CC-2\n")
    clean, problems = validate_fields(sample("purchase"), parse_form_text(body))
    assert problems == []
    assert clean == {"item": "pen", "supplier": "Askul", "quantity": 3, "amount": "300",
                     "category": "consumables", "cost_centres": ["CC-1", "CC-2"]}


def test_field_given_under_two_names() -> None:
    clean, problems = validate_fields(KINDS, parse_form_text("Amount: 1\nNote: x\n金額: 2\n"))
    assert clean == {"note": "x"}
    assert problems == [FieldProblem(
        "amount", "Amount: given more than once (lines 1, 3); keep only one line",
        "金額: 複数回書かれています（1, 3行目）。1行だけにしてください",
    )]


def test_clean_values_are_json_serialisable() -> None:
    body = "Amount: 1\nCount: 2\nDay: 2026/1/2\nNote: n\nColour: red\nTags: a\nSizes: s\n"
    clean, problems = validate_fields(KINDS, parse_form_text(body))
    assert problems == []
    assert json.loads(json.dumps(clean)) == {
        "amount": "1", "count": 2, "day": "2026-01-02", "note": "n", "colour": "Red",
        "tags": ["a"], "sizes": ["S"],
    }


# --- render_form and the round trip ----------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "first_line"),
    [("en", "Type: travel"), ("en_US", "Type: travel"), ("", "Type: travel"),
     ("fr", "Type: travel"), ("ja", "種別: travel"), ("ja_JP.UTF-8", "種別: travel"),
     ("JA-jp", "種別: travel")],
)
def test_render_form_first_line(locale: str, first_line: str) -> None:
    assert render_form(sample("travel"), locale).splitlines()[0] == first_line


def test_render_form_english_layout() -> None:
    lines = render_form(sample("travel"), "en").splitlines()
    assert lines[1:11] == ["Destination: ", "Purpose: ", "Departure date: ", "Return date: ",
                           "Amount: ", "Receipts: ", "Transport: ", "Notes: ", "", "--"]
    assert "- Transport (optional): one of: train, plane, car, bus. Main means of transport" \
        in lines
    assert "- Departure date (required): date, e.g. 2026-11-30" in lines


def test_render_form_japanese_layout() -> None:
    lines = render_form(sample("purchase"), "ja").splitlines()
    assert lines[1:4] == ["品名: ", "購入先: ", "数量: "]
    assert "- 区分（必須）: 次のいずれか: equipment、software、consumables、services" in lines
    assert "- 希望納期（任意）: 日付（例: 2026-11-30、2026年11月30日）" in lines
    assert not any("required" in line or "optional" in line for line in lines)


TRAVEL_FILL = {
    "Destination": "Osaka, Acme Ltd", "Purpose": "Customer visit",
    "Departure date": "2026/11/30", "Return date": "2026年12月1日", "Amount": "¥45,600",
    "Receipts": "３", "Transport": "Train", "Notes": "Shinkansen both ways",
    "出張先": "大阪 Acme社", "目的": "顧客訪問", "出発日": "2026/11/30",
    "帰着日": "2026年12月1日", "金額": "45600円", "領収書枚数": "３", "交通手段": "TRAIN",
    "備考": "Shinkansen both ways",
}
TRAVEL_EXPECTED_EN = {
    "destination": "Osaka, Acme Ltd", "purpose": "Customer visit",
    "departure_date": "2026-11-30", "return_date": "2026-12-01", "amount": "45600",
    "receipts": 3, "transport": "train", "notes": "Shinkansen both ways",
}
TRAVEL_EXPECTED_JA = {**TRAVEL_EXPECTED_EN, "destination": "大阪 Acme社", "purpose": "顧客訪問"}
PURCHASE_FILL = {
    "Item": "Laptop X1", "Supplier": "Askul", "Quantity": "2", "Amount": "360,000.50",
    "Category": "Equipment",
    "品名": "Laptop X1", "購入先": "Askul", "数量": "2", "金額": "￥360,000.50",
    "区分": "equipment",
}
PURCHASE_EXPECTED = {"item": "Laptop X1", "supplier": "Askul", "quantity": 2,
                     "amount": "360000.5", "category": "equipment"}


def fill(rendered: str, values: dict[str, str]) -> str:
    """Write values after the "Label: " blanks, as a user would; leave the rest."""
    return "\n".join(f"{line}{values[line[:-2]]}" if line[:-2] in values else line
                     for line in rendered.splitlines())


@pytest.mark.parametrize(
    ("type_name", "locale", "values", "expected"),
    [
        ("travel", "en", TRAVEL_FILL, TRAVEL_EXPECTED_EN),
        ("travel", "ja", TRAVEL_FILL, TRAVEL_EXPECTED_JA),
        ("purchase", "en", PURCHASE_FILL, PURCHASE_EXPECTED),
        ("purchase", "ja", PURCHASE_FILL, PURCHASE_EXPECTED),
    ],
)
@pytest.mark.parametrize("keep_signature_line", [True, False])
def test_round_trip(type_name: str, locale: str, values: dict[str, str],
                    expected: dict[str, Any], keep_signature_line: bool) -> None:
    ct = sample(type_name)
    body = fill(render_form(ct, locale), values)
    if not keep_signature_line:  # hints must not parse as fields even if "--" is deleted
        body = body.replace("\n--\n", "\n")
    parsed = parse_form_text("Hello,\n\n" + body)
    assert parsed.type_key is not None and REGISTRY.get(parsed.type_key) == ct
    clean, problems = validate_fields(ct, parsed)
    assert problems == []
    assert clean == expected


def test_round_trip_unfilled_reports_only_required() -> None:
    ct = sample("purchase")
    _, problems = validate_fields(ct, parse_form_text(render_form(ct, "en")))
    assert [p.field for p in problems] == ["item", "supplier", "quantity", "amount", "category"]
