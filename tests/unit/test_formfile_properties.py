"""Property tests: whatever a form file holds, the parser answers with a form or a
FormFileError, quickly. A drop folder relies on this to reject a bad file once instead of
retrying it on every rescan."""

from __future__ import annotations

import json
import time
from typing import Any

import tomli_w
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.parsing.formfile import (
    FORM_SUFFIXES,
    MAX_FORM_BYTES,
    FormFile,
    FormFileError,
    parse_form_file,
)

FAST = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SUFFIXES = st.sampled_from(sorted(FORM_SUFFIXES))
# Characters that break things downstream: NUL, C0/C1 controls, surrogates (via JSON
# escapes), bidi overrides, BOMs, full-width text and separators of each format.
NASTY = st.text(alphabet=st.sampled_from(
    list("\x00\x01\x1b\x7f\x85\x9f\u202e\ufeff\ufffe\u2028\"'\\[]{}:=#&*!|>-,\n\t ") +
    list("金額ａｍｏｕｎｔtype")), max_size=40)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    NASTY, st.text(max_size=30), st.dates())
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20)
DOCS = st.dictionaries(st.one_of(st.text(max_size=12), NASTY), VALUES, max_size=6)


def answered(data: bytes, suffix: str) -> FormFile | None:
    """The property itself: a FormFile whose text is storable, or FormFileError."""
    started = time.monotonic()
    try:
        form = parse_form_file(data, suffix, "form")
    except FormFileError as exc:
        assert str(exc).startswith("form")  # names the file for the person reading it
        return None
    finally:
        # A hang is forever; the bound is loose because CI machines are shared and slow.
        assert time.monotonic() - started < 10, "the parser must never hang"
    texts = [form.title, form.form.type_key or "", *form.form.values, *form.form.values.values()]
    for text in texts:
        assert isinstance(text, str)
        text.encode("utf-8")  # no lone surrogates: storable and mailable
        assert not any(ord(c) < 32 and c not in "\t\n\r" for c in text), text
    return form


@FAST
@given(st.binary(max_size=2000), SUFFIXES)
def test_arbitrary_bytes_are_a_form_or_a_form_error(data: bytes, suffix: str) -> None:
    answered(data, suffix)


@FAST
@given(st.text(max_size=400), SUFFIXES,
       st.sampled_from(["utf-8", "utf-16", "shift_jis", "iso-2022-jp", "latin-1"]))
def test_arbitrary_text_in_any_encoding(text: str, suffix: str, encoding: str) -> None:
    answered(text.encode(encoding, "replace"), suffix)


def _dump(doc: dict[str, Any], fmt: str) -> bytes | None:
    try:
        if fmt == ".json":
            return json.dumps(doc, default=str, ensure_ascii=False,
                              allow_nan=True).encode("utf-8", "surrogatepass")
        if fmt == ".toml":
            return tomli_w.dumps(doc).encode("utf-8", "surrogatepass")
        return yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError, yaml.YAMLError):
        return None  # not representable in that format (None in TOML, say)


@FAST
@given(DOCS, SUFFIXES)
def test_structured_documents_with_hostile_values(doc: dict[str, Any], suffix: str) -> None:
    data = _dump(doc, suffix)
    if data is not None:
        answered(data, suffix)


@settings(FAST, max_examples=40)  # each deep YAML document is scanned whole: ~0.1 s
@given(st.sampled_from(sorted(FORM_SUFFIXES)), st.integers(2, 3_000),
       st.sampled_from(["[", "{", "- ", "{\"a\":", "a: ", "[[", "{a=", "&x [*x, "]))
def test_deep_nesting_is_refused_not_recursed(suffix: str, depth: int, opener: str) -> None:
    data = (("a = " if suffix == ".toml" else "") + opener * depth).encode()
    data = data[:MAX_FORM_BYTES]
    answered(data, suffix)


BOMBS = {
    # billion laughs: each level multiplies the previous one by nine
    "laughs": "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
    "many aliases": "a: &a x\nb: [" + ", ".join(["*a"] * 10_000) + "]\n",
    "self reference": "a: &a [*a]\n",
    "mapping loop": "a: &a {b: *a}\n",
    "deep flow": "a: " + "[" * 50_000,
    "deep block": "".join("  " * i + "- \n" for i in range(2000)),
    "merge": "base: &b {x: 1}\nform:\n  <<: *b\n",
    "huge int": "amount: " + "9" * 5000 + "\n",
    "huge hex": "amount: 0x" + "f" * 20_000 + "\n",
    "impossible date": "date: 2026-13-45\n",
    "python tag": "a: !!python/object/apply:os.system ['true']\n",
    "binary": "a: !!binary '@@@'\n",
}


def test_hostile_yaml_documents() -> None:
    for label, text in BOMBS.items():
        started = time.monotonic()
        assert answered(text.encode(), ".yaml") is None, label
        assert time.monotonic() - started < 5, label


def test_hostile_json_and_toml_documents() -> None:
    hostile = [
        ('{"amount": ' + "9" * 5000 + "}", ".json"),
        ('{"a": "\\ud800"}', ".json"),
        ('{"a": "x\\u0000y"}', ".json"),
        ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", ".json"),
        ("a = " + "[" * 5000 + "]" * 5000, ".toml"),
        ("a = " + "{b=" * 3000 + "1" + "}" * 3000, ".toml"),
        ("a = 0x" + "f" * 5000, ".toml"),
        ('a = "\\u0000"', ".toml"),
        ("a = 1979-02-30", ".toml"),
    ]
    for text, suffix in hostile:
        assert answered(text.encode()[:MAX_FORM_BYTES], suffix) is None, text[:40]
    assert answered(b'{"amount": ' + b"9" * MAX_FORM_BYTES + b"}", ".json") is None


def test_a_good_form_still_reads() -> None:
    """The positive control: the limits do not refuse an ordinary form or a shared list."""
    form = answered("type: travel\nfriends: &f [a, b]\nothers: *f\n金額: 12000\n".encode(),
                    ".yaml")
    assert form is not None
    assert form.form.type_key == "travel"
    assert form.form.values == {"friends": "a, b", "others": "a, b", "金額": "12000"}
