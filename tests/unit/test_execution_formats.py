"""The data attached to an execution request, in each format a destination can ask for."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest

from daemon.execution.formats import Record, render

RECORD = Record(
    number="R-2026-000007", case_type="purchase", title="Toner, 3 boxes",
    requester_id="smith", requester_name="John Smith", requester_email="smith@example.com",
    requester_unit="sales", approved_at=dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC),
    fields={"item": "トナー \"XL\"", "quantity": 3, "amount": "12000.5",
            "delivery_date": "2026-12-01", "cost_centres": ["CC-1", "CC-2"]},
)


def test_json_keeps_types_and_exact_amounts() -> None:
    f = render(RECORD, "json", "order-R-2026-000007")
    assert f is not None
    assert (f.filename, f.maintype, f.subtype, f.charset) == \
        ("order-R-2026-000007.json", "application", "json", None)
    assert json.loads(f.data.decode("utf-8")) == {
        "case_number": "R-2026-000007", "case_type": "purchase", "title": "Toner, 3 boxes",
        "requester": {"id": "smith", "name": "John Smith", "email": "smith@example.com",
                      "unit": "sales"},
        "approved_at": "2026-11-02T01:00:00+00:00",
        "fields": {"item": "トナー \"XL\"", "quantity": 3, "amount": "12000.5",
                   "delivery_date": "2026-12-01", "cost_centres": ["CC-1", "CC-2"]},
    }
    assert "トナー".encode() in f.data  # readable UTF-8, not \\u escapes


def test_csv_is_one_header_and_one_row_quoted_per_rfc4180() -> None:
    f = render(RECORD, "csv", "po")
    assert f is not None
    assert (f.filename, f.maintype, f.subtype, f.charset) == ("po.csv", "text", "csv", "utf-8")
    text = f.data.decode("utf-8")
    assert text.endswith("\r\n") and text.count("\r\n") == 2
    assert '"Toner, 3 boxes"' in text and '"トナー ""XL"""' in text
    header, row = csv.reader(io.StringIO(text))
    assert dict(zip(header, row, strict=True)) == {
        "case_number": "R-2026-000007", "case_type": "purchase", "title": "Toner, 3 boxes",
        "requester_id": "smith", "requester_name": "John Smith",
        "requester_email": "smith@example.com", "requester_unit": "sales",
        "approved_at": "2026-11-02T01:00:00+00:00", "item": "トナー \"XL\"", "quantity": "3",
        "amount": "12000.5", "delivery_date": "2026-12-01", "cost_centres": "CC-1; CC-2"}


def test_csv_in_a_japanese_encoding() -> None:
    f = render(RECORD, "csv", "po", "cp932")
    assert f is not None and f.charset == "cp932"
    assert "トナー".encode("cp932") in f.data
    with pytest.raises(UnicodeDecodeError):
        f.data.decode("utf-8")


def test_unencodable_text_is_an_error_not_a_garbled_order() -> None:
    fields = {**RECORD.fields, "item": "Toner 🖨"}
    record = Record(**{**RECORD.__dict__, "fields": fields})
    with pytest.raises(UnicodeEncodeError):
        render(record, "csv", "po", "cp932")


def test_text_lines() -> None:
    f = render(RECORD, "text", "po")
    assert f is not None and (f.filename, f.subtype) == ("po.txt", "plain")
    lines = f.data.decode("utf-8").splitlines()
    assert lines[0] == "case_number: R-2026-000007"
    assert "cost_centres: CC-1; CC-2" in lines and "amount: 12000.5" in lines


def test_none_attaches_nothing() -> None:
    assert render(RECORD, "none", "po") is None
