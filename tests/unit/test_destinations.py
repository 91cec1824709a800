"""Destinations file: validation names the file and the entry; the first match is used."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from daemon.cases.casetypes import load_case_types
from daemon.execution.destinations import DestinationError, Destinations, load_destinations
from daemon.notify.templates import Templates
from tests.support import ROOT

TYPES = load_case_types(ROOT / "rules" / "casetypes")
FIELDS = {t.name: {f.name for f in t.fields} for t in TYPES.all()}
KINDS = {f.name: str(f.kind) for f in next(t for t in TYPES.all() if t.name == "purchase").fields}
TEMPLATES = Templates(ROOT / "mailtemplates", ROOT / "rules" / "destinations" / "templates")
COMPANY_HOLIDAY = dt.date(2026, 11, 23)

GOOD = """
[default]
address = "desk@example.com"
format = "csv"
locale = "ja"
  [default.calendar]
  hours = "09:00-17:30"
  timezone = "Asia/Tokyo"
  holidays = [2026-12-31]

[[destinations]]
name = "acme"
address = "orders@acme.example"
case_types = ["purchase"]
when = "case.supplier == 'ACME' && case.amount < 1000000"
format = "json"
  [destinations.calendar]
  hours = "10:00-16:00"
  holidays = ["2026-12-30"]

[[destinations]]
name = "travel-desk"
address = "travel@example.com"
case_types = ["travel"]
format = "text"
  [destinations.calendar]
  business_days = false
"""


def load(tmp_path: Path, text: str) -> Destinations:
    path = tmp_path / "destinations.toml"
    path.write_text(text, encoding="utf-8")
    return load_destinations(path, FIELDS, [0, 1, 2, 3, 4], [COMPANY_HOLIDAY],
                             TEMPLATES.problem)


def choose(d: Destinations, case_type: str, **fields: object) -> str | None:
    found = d.choose(case_type, dict(fields), KINDS, {"case_type": case_type})
    return found.name if found else None


def test_first_match_then_default(tmp_path: Path) -> None:
    d = load(tmp_path, GOOD)
    assert choose(d, "purchase", supplier="ACME", amount="180000") == "acme"
    assert choose(d, "purchase", supplier="ACME", amount="2000000") == "default"
    assert choose(d, "purchase", supplier="Globex", amount="1") == "default"
    assert choose(d, "purchase", amount="1") == "default"  # `when` on an unset field: no match
    assert choose(d, "design_release") == "default"
    assert choose(d, "travel") == "travel-desk"


def test_keys_and_calendar_come_from_the_default(tmp_path: Path) -> None:
    d = load(tmp_path, GOOD)
    acme, travel, default = (d.by_name(n) for n in ("acme", "travel-desk", "default"))
    assert acme is not None and travel is not None and default is not None
    assert (acme.format, acme.locale, acme.template, acme.encoding) == \
        ("json", "ja", "execution_request", "utf-8")
    assert acme.calendar.timezone.key == "Asia/Tokyo"  # inherited
    assert acme.calendar.windows == ((600, 960),)  # its own hours
    # company holidays, then the default's, then its own, all together
    assert acme.calendar.holidays == {COMPANY_HOLIDAY, dt.date(2026, 12, 31),
                                      dt.date(2026, 12, 30)}
    assert default.calendar.holidays == {COMPANY_HOLIDAY, dt.date(2026, 12, 31)}
    assert acme.calendar.weekdays == frozenset(range(5))
    assert travel.calendar.weekdays == frozenset(range(7))


def test_default_without_address_means_no_destination(tmp_path: Path) -> None:
    d = load(tmp_path, GOOD.replace('address = "desk@example.com"', 'address = ""'))
    assert d.default is None
    assert choose(d, "purchase", supplier="Globex", amount="1") is None


def test_missing_file_is_no_destination(tmp_path: Path) -> None:
    d = load_destinations(tmp_path / "none.toml", FIELDS, [0], [], TEMPLATES.problem)
    assert d.all() == [] and choose(d, "purchase", supplier="ACME", amount="1") is None


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('name = "acme"', 'name = "ac me"', "destination 'ac me': name must be letters"),
        ('"orders@acme.example"', '"orders"', "destination 'acme': address must be an email"),
        ('case_types = ["purchase"]', 'case_types = []', "case_types = [\"...\"] is required"),
        ('case_types = ["purchase"]', 'case_types = ["holiday"]', "unknown case type 'holiday'"),
        ("case.supplier == 'ACME'", "case.suplier == 'ACME'",
         "when: case.suplier is not a field of this case type; did you mean case.supplier?"),
        ("case.supplier == 'ACME'", "case.supplier = 'ACME'", "when does not compile"),
        ('format = "json"', 'format = "xml"', "format must be one of json, csv, text, none"),
        ('locale = "ja"', 'locale = "fr"', "[default]: locale must be one of en, ja"),
        ('hours = "10:00-16:00"', 'hours = "10-16"', "calendar: hours '10-16'"),
        ('timezone = "Asia/Tokyo"', 'timezone = "Tokyo"', "unknown time zone 'Tokyo'"),
        ('holidays = ["2026-12-30"]', 'holidays = ["someday"]', "'someday' is not a date"),
        ("business_days = false", "business_days = [7]", "calendar.business_days must be"),
        ('format = "text"', 'format = "text"\nencoding = "klingon"', "unknown encoding"),
        ('format = "json"', 'format = "json"\ntemplate = "nowhere"',
         "template 'nowhere': no mail template ja/nowhere.txt"),
        ('format = "json"', 'format = "json"\nprice = 1', "destination 'acme': unknown key"),
        ('[default]', '[default]\ncase_types = ["travel"]', "[default]: unknown key 'case_types'"),
        ('name = "travel-desk"', 'name = "acme"', "destination 'acme': name is used twice"),
        ('format = "json"', 'format = "json"\nfilename = "../x"', "filename must be a plain"),
    ],
)
def test_errors_name_file_and_entry(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in GOOD
    with pytest.raises(DestinationError) as exc:
        load(tmp_path, GOOD.replace(old, new, 1))
    prefix = f"{tmp_path / 'destinations.toml'}: "
    assert any(message in e and e.startswith(prefix) for e in exc.value.errors), \
        exc.value.errors


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    bad = GOOD.replace('format = "json"', 'format = "xml"').replace('"travel@example.com"', '"x"')
    with pytest.raises(DestinationError) as exc:
        load(tmp_path, bad)
    assert len(exc.value.errors) == 2


def test_not_toml(tmp_path: Path) -> None:
    with pytest.raises(DestinationError, match="problem"):
        load(tmp_path, "[default\n")


def test_sample_file_is_valid() -> None:
    d = load_destinations(ROOT / "rules" / "destinations.toml", FIELDS, [0, 1, 2, 3, 4], [],
                          TEMPLATES.problem)
    assert [x.name for x in d.all()] == ["acme-orders", "purchasing-desk"]
    assert choose(d, "purchase", supplier="ACME Ltd.", amount="1") == "acme-orders"
    assert choose(d, "purchase", supplier="Globex", amount="1") == "purchasing-desk"


def test_destination_template_must_exist_in_its_language(tmp_path: Path) -> None:
    """acme_order exists in English only: a Japanese ACME desk is refused at start."""
    text = (ROOT / "rules" / "destinations.toml").read_text()
    assert 'locale = "en"' in text
    with pytest.raises(DestinationError) as exc:
        load(tmp_path, text.replace('locale = "en"', 'locale = "ja"'))
    assert any("template 'acme_order': no mail template ja/acme_order.txt" in e
               for e in exc.value.errors), exc.value.errors
