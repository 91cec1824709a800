"""Tests for loading and looking up case type definitions."""

from __future__ import annotations

import pathlib

import pytest

from daemon.cases.casetypes import (
    CaseType,
    CaseTypeError,
    CaseTypeRegistry,
    FieldSpec,
    load_case_types,
)

SAMPLES = pathlib.Path(__file__).resolve().parents[2] / "rules" / "casetypes"

HEADER = 'name = "t"\ntitle = "Test"\ntitle_ja = "テスト"\n'  # lines 1-3


def field(name: str = "amount", label: str = "Amount", label_ja: str = "金額",
          kind: str = "money", extra: str = "") -> str:
    """A [[fields]] block: header, name, label, label_ja, kind, required, then *extra*."""
    return (f'\n[[fields]]\nname = "{name}"\nlabel = "{label}"\nlabel_ja = "{label_ja}"\n'
            f'kind = "{kind}"\nrequired = true\n{extra}')


def errors_for(tmp_path: pathlib.Path, *texts: str) -> list[str]:
    """Load *texts* as a.toml, b.toml, ... and return the errors with paths as FILE_a etc."""
    for n, text in enumerate(texts):
        (tmp_path / f"{'abcdefgh'[n]}.toml").write_text(text, encoding="utf-8")
    with pytest.raises(CaseTypeError) as caught:
        load_case_types(tmp_path)
    prefix = str(tmp_path) + "/"
    return [e.replace(prefix, "FILE_").replace(".toml", "") for e in caught.value.errors]


# --- shipped samples -------------------------------------------------------------------


def test_shipped_samples_load() -> None:
    registry = load_case_types(SAMPLES)
    assert [t.name for t in registry.all()] == ["design_release", "purchase", "travel"]


@pytest.mark.parametrize(
    ("type_name", "expected"),
    [
        ("travel", [
            ("destination", "text", True, ()),
            ("purpose", "text", True, ()),
            ("departure_date", "date", True, ()),
            ("return_date", "date", True, ()),
            ("amount", "money", True, ()),
            ("receipts", "integer", False, ()),
            ("transport", "choice", False, ("train", "plane", "car", "bus")),
            ("notes", "text", False, ()),
        ]),
        ("purchase", [
            ("item", "text", True, ()),
            ("supplier", "text", True, ()),
            ("quantity", "integer", True, ()),
            ("amount", "money", True, ()),
            ("delivery_date", "date", False, ()),
            ("category", "choice", True, ("equipment", "software", "consumables", "services")),
            ("material_code", "text", False, ()),
            ("cost_centres", "list", False, ()),
            ("notes", "text", False, ()),
        ]),
    ],
)
def test_shipped_sample_fields(type_name: str, expected: list[tuple[object, ...]]) -> None:
    ct = load_case_types(SAMPLES).get(type_name)
    assert ct is not None
    assert [(f.name, f.kind, f.required, f.choices) for f in ct.fields] == expected
    assert ct.title_ja and ct.description and ct.description_ja
    assert all(f.label and f.label_ja for f in ct.fields)
    assert ct.source == str(SAMPLES / f"{type_name}.toml")


# --- validation errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(HEADER + 'colour = "red"\n' + field(),
                     "FILE_a:4: unknown key 'colour'; allowed keys are: name, title,",
                     id="unknown-top-key"),
        pytest.param(HEADER + field(extra="size = 3\n"),
                     "FILE_a:11: field 'amount': unknown key 'size'", id="unknown-field-key"),
        pytest.param('title = "Test"\n' + field(), "FILE_a: missing required key 'name'",
                     id="missing-name"),
        pytest.param('name = "t"\n' + field(), "FILE_a: missing required key 'title'",
                     id="missing-title"),
        pytest.param('name = " "\ntitle = "Test"\n' + field(),
                     "FILE_a:1: 'name' must not be empty", id="empty-name"),
        pytest.param('name = 3\ntitle = "Test"\n' + field(),
                     "FILE_a:1: 'name' must be a string", id="name-not-string"),
        pytest.param('name = "Travel Expense"\ntitle = "Test"\n' + field(),
                     "FILE_a:1: name 'Travel Expense' must be lower-case", id="bad-type-name"),
        pytest.param(HEADER + 'fields = "x"\n', "FILE_a:4: 'fields' must be a list",
                     id="fields-not-tables"),
        pytest.param(HEADER + field(kind="currency"),
                     "FILE_a:9: field 'amount': kind 'currency' is not one of: money, integer, "
                     "date, text, choice, list", id="bad-kind"),
        pytest.param(HEADER + '\n[[fields]]\nname = "amount"\nlabel = "Amount"\n',
                     "FILE_a:5: field 'amount': missing required key 'kind'", id="missing-kind"),
        pytest.param(HEADER + '\n[[fields]]\nlabel = "Amount"\nkind = "money"\n',
                     "FILE_a:5: field #1: missing required key 'name'", id="missing-field-name"),
        pytest.param(HEADER + field() + field(label="Total", label_ja="合計"),
                     "FILE_a:12: field 'amount': 'amount' already names field 'amount'",
                     id="duplicate-field-name"),
        pytest.param(HEADER + field() + field(name="total", label_ja="合計"),
                     "FILE_a:12: field 'total': 'amount' already names field 'amount'",
                     id="duplicate-label"),
        pytest.param(HEADER + field() + field(name="total", label="Total"),
                     "FILE_a:12: field 'total': '金額' already names field 'amount'",
                     id="duplicate-label-ja"),
        pytest.param(HEADER + field() + field(name="total", label=" AMOUNT ", label_ja="合計"),
                     "FILE_a:12: field 'total': 'amount' already names field 'amount'",
                     id="duplicate-label-after-normalising"),
        pytest.param(HEADER + field(name="cost_centre") + field(
                         name="centre", label="Cost centre", label_ja="原価"),
                     "FILE_a:12: field 'centre': 'cost centre' already names field "
                     "'cost_centre'", id="label-equals-other-name-with-spaces"),
        pytest.param(HEADER + field(kind="choice"),
                     "FILE_a:5: field 'amount': kind 'choice' needs a non-empty 'choices'",
                     id="choice-without-choices"),
        pytest.param(HEADER + field(kind="choice") + field(
                         name="size", label="Size", label_ja="サイズ", kind="choice",
                         extra='choices = ["S"]\n'),
                     "FILE_a:5: field 'amount': kind 'choice' needs a non-empty 'choices'",
                     id="line-search-stays-in-own-table"),
        pytest.param(HEADER + field(kind="choice", extra="choices = []\n"),
                     "FILE_a:11: field 'amount': kind 'choice' needs a non-empty 'choices'",
                     id="choice-empty-choices"),
        pytest.param(HEADER + field(extra='choices = ["a"]\n'),
                     "FILE_a:11: field 'amount': 'choices' only applies to kind 'choice'",
                     id="choices-on-money"),
        pytest.param(HEADER + field(kind="choice", extra='choices = ["Red", "red "]\n'),
                     "FILE_a:11: field 'amount': choice 'red' is listed more than once",
                     id="duplicate-choice"),
        pytest.param(HEADER + field(kind="choice", extra='choices = ["a", ""]\n'),
                     "FILE_a:11: field 'amount': 'choices' must be a list of non-empty",
                     id="empty-choice"),
        pytest.param(HEADER + field(kind="list", extra='choices = ["a, b"]\n'),
                     "FILE_a:11: field 'amount': choice 'a, b' contains a list separator",
                     id="list-choice-with-separator"),
        pytest.param(HEADER + field(name="type"),
                     "FILE_a:6: field 'type': name 'type' is reserved", id="reserved-type"),
        pytest.param(HEADER + field(name="title"),
                     "FILE_a:6: field 'title': name 'title' is reserved", id="reserved-title"),
        pytest.param(HEADER + field(name="kind_of", label="Case Type"),
                     "FILE_a:7: field 'kind_of': label 'Case Type' would be read as the case "
                     "type line", id="label-is-type-key"),
        pytest.param(HEADER + field(name="kind_of", label="Kind", label_ja="種別"),
                     "FILE_a:8: field 'kind_of': label '種別' would be read as the case type "
                     "line", id="label-ja-is-type-key"),
        pytest.param(HEADER + field(name="Amount"),
                     "FILE_a:6: field 'Amount': name must be lower-case", id="bad-field-name"),
        pytest.param(HEADER + field().replace("required = true", 'required = "yes"'),
                     "FILE_a:10: field 'amount': 'required' must be true or false",
                     id="required-not-bool"),
        pytest.param(HEADER + "[[fields]\n", "FILE_a: invalid TOML: ", id="invalid-toml"),
    ],
)
def test_validation_error(tmp_path: pathlib.Path, text: str, expected: str) -> None:
    errors = errors_for(tmp_path, text)
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected), errors


def test_invalid_toml_reports_line(tmp_path: pathlib.Path) -> None:
    errors = errors_for(tmp_path, HEADER + "oops\n")
    assert len(errors) == 1 and "line 4" in errors[0], errors


def test_all_errors_collected_across_files(tmp_path: pathlib.Path) -> None:
    errors = errors_for(
        tmp_path,
        HEADER + 'colour = "red"\n' + field(kind="currency"),
        'name = "ok"\ntitle = "Fine"\n' + field(),
        'title = "No name"\n' + field(name="type"),
        'name = "ok"\ntitle = "Also fine"\n' + field(),
    )
    assert [e.split(" ")[0] for e in errors] == [
        "FILE_a:4:", "FILE_a:10:", "FILE_c:", "FILE_c:4:", "FILE_d:",
    ], errors
    assert "answers to 'ok', which already names case type 'ok' (FILE_b)" in errors[-1]


@pytest.mark.parametrize(
    ("second_header", "key"),
    [
        ('name = "t"\ntitle = "Other"\n', "t"),
        ('name = "u"\ntitle = " TEST "\n', "test"),
        ('name = "u"\ntitle = "Other"\ntitle_ja = "テスト"\n', "テスト"),
        ('name = "test"\ntitle = "Other"\n', "test"),
    ],
)
def test_duplicate_case_type_keys_across_files(
    tmp_path: pathlib.Path, second_header: str, key: str
) -> None:
    errors = errors_for(tmp_path, HEADER + field(), second_header + field())
    assert len(errors) == 1, errors
    assert errors[0].startswith("FILE_b: case type ")
    assert f"answers to '{key}', which already names case type 't' (FILE_a)" in errors[0]


def test_defaults_for_optional_keys(tmp_path: pathlib.Path) -> None:
    (tmp_path / "min.toml").write_text(
        'name = "min"\ntitle = "Minimal"\n[[fields]]\nname = "note"\nlabel = "Note"\n'
        'kind = "text"\n', encoding="utf-8")
    (tmp_path / "ignored.txt").write_text("not toml", encoding="utf-8")
    ct = load_case_types(tmp_path).get("min")
    assert ct == CaseType(
        name="min", title="Minimal", title_ja="", description="", description_ja="",
        fields=(FieldSpec("note", "Note", "", "text", required=False),),
        source=str(tmp_path / "min.toml"),
    )


def test_missing_directory(tmp_path: pathlib.Path) -> None:
    with pytest.raises(CaseTypeError) as caught:
        load_case_types(tmp_path / "nope")
    assert caught.value.errors == [f"{tmp_path / 'nope'}: not a directory of case type files"]


# --- registry --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("travel", "travel"),
        ("  TRAVEL\t", "travel"),
        ("Travel expense", "travel"),
        ("travel   EXPENSE", "travel"),
        ("出張旅費精算", "travel"),
        (" 購買申請 ", "purchase"),
        ("ｐｕｒｃｈａｓｅ", "purchase"),
        ("Purchase Request", "purchase"),
        ("purchases", None),
        ("", None),
    ],
)
def test_registry_lookup(key: str, expected: str | None) -> None:
    found = load_case_types(SAMPLES).get(key)
    assert (found.name if found else None) == expected


def _ct(name: str, title: str, title_ja: str = "") -> CaseType:
    return CaseType(name, title, title_ja, "", "", (), f"{name}.toml")


def test_registry_all_sorted_by_name() -> None:
    registry = CaseTypeRegistry([_ct("zeta", "Z"), _ct("alpha", "A"), _ct("mid", "M")])
    assert [t.name for t in registry.all()] == ["alpha", "mid", "zeta"]


def test_registry_refuses_ambiguous_titles() -> None:
    with pytest.raises(CaseTypeError) as caught:
        CaseTypeRegistry([_ct("a", "Same", "同じ"), _ct("b", "same")])
    assert caught.value.errors == [
        "b.toml: case type 'b' answers to 'same', which already names case type 'a' "
        "(a.toml); names and titles must be unique"
    ]
