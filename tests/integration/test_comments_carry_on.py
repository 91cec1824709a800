"""Approvers' comments reach the requester (SPEC C.15): in each progress mail and in the
final one, not only in the next approver's request. Real SMTP, real relay."""

from __future__ import annotations

from tests.integration.test_outcomes import (
    SATO,
    SMITH,
    SUZUKI,
    TAKAHASHI,
    TANAKA,
    World,
    number_of,
    travel,
)


def test_comments_reach_the_requester_in_progress_and_result(world: World) -> None:
    w = world
    w.send(TANAKA, "大阪出張", travel("54,500"))
    number_of(w.one(TANAKA))
    w.reply(w.one(SATO), SATO, "承認\n予算内です。")
    w.new(SATO)
    progress = w.one(TANAKA)  # Japanese: Tanaka's locale
    assert "承認者からのコメント:" in progress.body and ": 予算内です。" in progress.body
    w.reply(w.one(SUZUKI), SUZUKI, "承認します。\n訪問先によろしく。")
    w.new(SUZUKI)
    final = w.one(TANAKA)
    assert "承認されました" in final.subject
    assert ": 予算内です。" in final.body and ": 訪問先によろしく。" in final.body


def test_a_return_carries_the_earlier_approvers_comments(world: World) -> None:
    w = world
    w.send(SMITH, "Trip", travel("54,500"))
    number_of(w.one(SMITH))
    w.reply(w.one(TAKAHASHI), TAKAHASHI, "APPROVE\nThe customer matters.")
    w.new(TAKAHASHI)
    progress = w.one(SMITH)  # English
    assert "What the approvers wrote:" in progress.body
    assert ": The customer matters." in progress.body
    w.reply(w.one("brown@example.com"), "brown@example.com", "RETURN\nAttach the agenda.")
    w.new("brown@example.com")
    returned = w.one(SMITH)
    assert "Attach the agenda." in returned.body
    assert ": The customer matters." in returned.body
