"""Decision lines in a reply to a digest: the number first, then what a single reply says."""

from __future__ import annotations

from daemon.parsing.multidecision import MAX_LINES, decision_lines, number_pattern
from daemon.parsing.reply import Decision

NUMBERS = number_pattern("R-{year}-{seq:06d}")


def read(text: str) -> list[tuple[str, Decision | None, str]]:
    return [(d.number, d.parsed.decision if d.parsed else None,
             d.parsed.reason if d.parsed else "") for d in decision_lines(text, NUMBERS)]


def test_lines_in_both_languages_with_reasons() -> None:
    text = ("Hi Hanako,\n\nR-2026-000123 approve\nR-2026-000124 reject: the quote is missing\n"
            "R-2026-000125 承認\nR-2026-000126 却下 予算超過のため\n"
            "- R-2026-000127 return: add the hotel receipt\n・R-2026-000128 保留\n\nThanks\nBob\n")
    assert read(text) == [
        ("R-2026-000123", Decision.APPROVE, ""),
        ("R-2026-000124", Decision.REJECT, "the quote is missing"),
        ("R-2026-000125", Decision.APPROVE, ""),
        ("R-2026-000126", Decision.REJECT, "予算超過のため"),
        ("R-2026-000127", Decision.RETURN, "add the hotel receipt"),
        ("R-2026-000128", Decision.HOLD, ""),
    ]


def test_full_width_numbers_and_no_space_before_the_word() -> None:
    assert read("Ｒ－２０２６－０００１２５ 承認します\nr-2026-000126却下 高すぎます") == [
        ("R-2026-000125", Decision.APPROVE, ""), ("R-2026-000126", Decision.REJECT, "高すぎます")]


def test_negated_questioned_or_missing_decisions_are_none() -> None:
    assert read("R-2026-000123 cannot approve\nR-2026-000124 承認できません\n"
                "R-2026-000125 approve?\nR-2026-000126\nR-2026-000127 looks fine") == [
        (f"R-2026-00012{i}", None, "") for i in range(3, 8)]


def test_only_the_own_text_counts_not_the_quoted_digest() -> None:
    text = ("R-2026-000123 approve\n\nOn Mon, 2 Nov 2026 at 09:00, ringi <ringi@example.com> "
            "wrote:\n> R-2026-000124 approve\n> Case R-2026-000125: Travel\n")
    assert read(text) == [("R-2026-000123", Decision.APPROVE, "")]


def test_other_lines_and_longer_numbers_are_not_decision_lines() -> None:
    text = ("Case R-2026-000123: approve\nsee R-2026-000124 approve\n"
            "R-2026-000125x approve\n<case number> approve\n")
    assert read(text) == []


def test_the_configured_number_format() -> None:
    numbers = number_pattern("KR{year}{month:02d}-{seq:04d}")
    lines = decision_lines("kr202611-0007 approve\nR-2026-000123 approve", numbers)
    assert [(d.number, d.parsed.decision if d.parsed else None) for d in lines] == [
        ("KR202611-0007", Decision.APPROVE)]


def test_past_the_limit_one_unread_line_stands_for_the_rest() -> None:
    text = "\n".join(f"R-2026-{n:06d} approve" for n in range(1, MAX_LINES + 50))
    lines = decision_lines(text, NUMBERS)
    assert len(lines) == MAX_LINES + 1
    assert lines[-1].parsed is None and lines[-2].parsed is not None
