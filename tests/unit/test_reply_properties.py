"""Properties of the reply grammar for any text: a quote alone is never a decision, adding
a quote never changes what the own text says, and a negation anywhere undoes a decision."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.parsing.reply import Decision, parse_decision

FAST = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

BITS = st.sampled_from([
    "承認", "承認します", "却下", "差し戻し", "保留", "APPROVE", "Approved", "reject", "hold",
    "Return", "お疲れ様です。", "Hi Alice,", "山田さん", "Best regards,", "よろしくお願いします。",
    "-- ", "Sent from my iPhone", "？", "?", " ", "、", "。", ":", "not ", "cannot ", "できません",
    "予算超過", "too expensive", "Taro", "\u3000", "- item", "Dear Mr. Sato,", "以上",
])
LINES = st.lists(st.lists(BITS, max_size=6).map("".join), max_size=8)
ATTR = "On Sat, Nov 21, 2026 at 10:00 AM ringi <ringi+t@example.com> wrote:"


@FAST
@given(LINES)
def test_a_quote_alone_is_never_a_decision(lines: list[str]) -> None:
    quoted = "\n".join("> " + line for line in lines)
    assert parse_decision(quoted) is None
    assert parse_decision(f"{ATTR}\n{quoted}") is None


@FAST
@given(LINES, st.lists(st.lists(BITS, max_size=6).map("".join), min_size=1, max_size=8))
def test_a_quote_below_or_above_changes_nothing(own: list[str], original: list[str]) -> None:
    text = "\n".join(own)
    quote = "\n".join("> " + line for line in original)
    alone = parse_decision(text)
    assert parse_decision(f"{text}\n\n{ATTR}\n{quote}") == alone
    assert parse_decision(f"{ATTR}\n{quote}\n\n{text}") == alone


@FAST
@given(LINES, st.sampled_from(["I cannot approve this.", "承認できません。", "Approve?",
                               "承認しますか？", "not approved"]))
def test_a_negated_approval_anywhere_is_never_an_approval(own: list[str], negation: str) -> None:
    for at in range(len(own) + 1):
        lines = [*own[:at], negation, *own[at:]]
        parsed = parse_decision("\n".join(lines))
        assert parsed is None or parsed.decision != Decision.APPROVE
