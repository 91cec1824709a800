"""The audit chain's hashing: one canonical text per entry, sensitive to every part."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

import pytest

from daemon.audit.trail import GENESIS, canonical_json, entry_hash, normalise

AT = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def test_canonical_json_sorts_keys_without_whitespace_and_strs_decimals_and_dates() -> None:
    text = canonical_json({"b": [1, 2], "名前": "渡辺",
                           "a": {"z": Decimal("1900000.00"), "y": dt.date(2026, 12, 31)}})
    assert text == '{"a":{"y":"2026-12-31","z":"1900000.00"},"b":[1,2],"名前":"渡辺"}'


def test_normalise_gives_what_the_json_column_reads_back() -> None:
    assert normalise({"amount": Decimal("5.50"), "ok": (True, None), "when": AT}) == {
        "amount": "5.50", "ok": [True, None], "when": "2026-11-02 09:00:00+00:00"}
    with pytest.raises(ValueError):
        normalise({"rate": float("nan")})


def test_hash_is_sha256_of_previous_hash_and_the_canonical_entry() -> None:
    got = entry_hash(GENESIS, 1, AT, "factor set", "sato", "factor rate", {"new": 0.5})
    body = ('{"actor":"sato","at":"2026-11-02T09:00:00+00:00","data":{"new":0.5},'
            '"kind":"factor set","seq":1,"subject":"factor rate"}')
    assert got == hashlib.sha256((GENESIS + body).encode()).hexdigest()


def test_every_part_of_an_entry_changes_its_hash() -> None:
    base = (GENESIS, 1, AT, "factor set", "sato", "factor rate", {"new": 0.5})
    h = entry_hash(*base)
    variants = [
        ("1" * 64, *base[1:]),
        (base[0], 2, *base[2:]),
        (*base[:2], AT + dt.timedelta(microseconds=1), *base[3:]),
        (*base[:3], "factor unset", *base[4:]),
        (*base[:4], None, *base[5:]),
        (*base[:5], "factor rate2", base[6]),
        (*base[:6], {"new": 0.51}),
    ]
    hashes = {entry_hash(*v) for v in variants}  # type: ignore[arg-type]
    assert h not in hashes and len(hashes) == len(variants)
