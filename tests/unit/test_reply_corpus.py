"""Every reply in tests/data/replies, read the way intake reads it, gives its expected outcome.

The corpus holds replies as each client really writes them (Outlook desktop and web, Gmail
web and Android, Apple Mail, iOS, Thunderbird top and bottom, mailing-list interleaved),
in UTF-8, ISO-2022-JP and Shift_JIS, quoted-printable, base64 and 8 bit, text and HTML
only; expected.toml gives each file's decision ("none" where it must not be read) and the
exact reason. docs/replies.md is the grammar these files illustrate.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from daemon.parsing.message import parse_mail
from daemon.parsing.reply import parse_decision
from daemon.parsing.replywords import SIGNOFFS_EN, SIGNOFFS_JA, fold, is_signoff

CORPUS = Path(__file__).resolve().parents[1] / "data" / "replies"
EXPECTED: dict[str, dict[str, str]] = tomllib.loads(
    (CORPUS / "expected.toml").read_text(encoding="utf-8"))
# Closings that never belong in a reason, wherever they stand in it ("…をお願いします。" or
# "thank you for …" may end a real sentence, so those are checked line by line only).
CLOSINGS = [s for s in (*SIGNOFFS_EN, *SIGNOFFS_JA) if len(s) >= 5 and not s.startswith(
    ("お願い", "ありがとう", "失礼", "thank", "have a", "much", "取り急ぎ"))]


def test_corpus_is_complete() -> None:
    files = {p.name for p in CORPUS.glob("*.eml")}
    assert files == set(EXPECTED), "every .eml has an expected outcome and vice versa"
    outcomes = [e["decision"] for e in EXPECTED.values()]
    assert len(files) >= 40 and outcomes.count("none") >= 10


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_reply(name: str) -> None:
    expected = EXPECTED[name]
    mail = parse_mail((CORPUS / name).read_bytes())
    assert mail.sender_problem is None and mail.from_addr
    parsed = parse_decision(mail.text, names=(mail.from_name,))
    if expected["decision"] == "none":
        assert parsed is None, f"{name} ({expected['style']}) must not be read as a decision"
        return
    assert parsed is not None, f"{name} ({expected['style']}) was not read"
    assert (parsed.decision.value, parsed.reason) == (expected["decision"], expected["reason"])
    folded = fold(parsed.reason)
    assert not any(closing in folded for closing in CLOSINGS), "a sign-off is in the reason"
    assert not any(is_signoff(line) for line in parsed.reason.split("\n")), "a closing line"
