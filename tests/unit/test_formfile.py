"""Form files in each format and encoding read to the same form as a mail body would."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cases.casetypes import load_case_types
from daemon.parsing.formfile import FormFileError, parse_form_file
from daemon.parsing.request import validate_fields

ROOT = Path(__file__).resolve().parents[2]
TYPES = load_case_types(ROOT / "rules" / "casetypes")

TOML = """type = "travel"
title = "大阪出張"
"出張先" = "大阪"
purpose = "顧客訪問"
departure_date = 2026-11-10
"Return date" = "2026/11/11"
"金額" = 24500
transport = "train"
"""
JSON = """{"Type": "travel", "Title": "大阪出張", "出張先": "大阪", "Purpose": "顧客訪問",
 "Departure date": "2026-11-10", "return_date": "2026年11月11日", "amount": "24,500円",
 "transport": "train"}"""
YAML = """種別: travel
件名: 大阪出張
出張先: 大阪
目的: 顧客訪問
出発日: 2026-11-10
帰着日: 2026-11-11
金額: 24500
交通手段: train
"""
EXPECTED = {"destination": "大阪", "purpose": "顧客訪問", "departure_date": "2026-11-10",
            "return_date": "2026-11-11", "amount": "24500", "transport": "train"}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "shift_jis", "iso-2022-jp"])
@pytest.mark.parametrize(("text", "suffix"), [(TOML, ".toml"), (JSON, ".json"), (YAML, ".yaml")])
def test_formats_and_encodings_agree(text: str, suffix: str, encoding: str) -> None:
    parsed = parse_form_file(text.encode(encoding), suffix)
    assert parsed.title == "大阪出張"
    assert parsed.form.type_key == "travel"
    ct = TYPES.get(parsed.form.type_key)
    assert ct is not None
    values, problems = validate_fields(ct, parsed.form)
    assert problems == []
    assert values == EXPECTED


@pytest.mark.parametrize(
    ("data", "suffix", "message"),
    [
        (b"type = ", ".toml", "not valid TOML"),
        (b'{"type": ', ".json", "not valid JSON"),
        (b"type: [", ".yaml", "not valid YAML (line"),
        (b"- a\n- b\n", ".yaml", "must be a table"),
        (b"type = 'travel'\n[extra]\nx = 1\n", ".toml", "extra: a field value must be"),
        (b"type = 'travel'", ".txt", "not a form file"),
        ("type = 'travel'\n金額 = 1\n".encode(), ".toml", 'quote keys that are not plain ASCII'),
    ],
)
def test_bad_files_say_why(data: bytes, suffix: str, message: str) -> None:
    with pytest.raises(FormFileError) as exc:
        parse_form_file(data, suffix, "request.x")
    assert message in str(exc.value)
    assert str(exc.value).startswith("request.x")
