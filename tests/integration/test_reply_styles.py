"""Replies as people write them, end to end over SMTP against ringi's real request mail:
below the quote, after a greeting, closed by a sign-off and a name; and a negated one,
which changes nothing and is answered with an error."""

from __future__ import annotations

from sqlalchemy import select

from daemon.store.models import Case, CaseEvent
from tests.integration.test_outcomes import (
    PURCHASE,
    SATO,
    SMITH,
    TAKAHASHI,
    TANAKA,
    World,
    number_of,
    travel,
)
from tests.support import Captured, send


def bottom_post(w: World, mail: Captured, sender: str, text: str) -> None:
    """Thunderbird's "start my reply below the quote": attribution, quote, then the text."""
    quoted = "\n".join("> " + line for line in mail.body.splitlines())
    body = f"On 11/2/26 09:00, ringi wrote:\n{quoted}\n\n{text}\n"
    send(w.port, sender, "Re: " + mail.subject, body, to=str(mail.message["Reply-To"]),
         headers={"In-Reply-To": str(mail.message["Message-ID"])})


def decisions(w: World, number: str) -> list[str]:
    """The reason recorded with each decision on the case, oldest first."""
    with w.app.store.transaction() as s:
        case = s.scalar(select(Case).where(Case.number == number))
        assert case is not None
        return [e.reason or "" for e in s.scalars(select(CaseEvent).where(
            CaseEvent.case_id == case.id, CaseEvent.kind == "decision").order_by(CaseEvent.id))]


def test_bottom_posted_japanese_reply_with_greeting_and_signoff(world: World) -> None:
    w = world
    w.send(TANAKA, "大阪出張", travel("30,000", "2"))
    number = number_of(w.one(TANAKA))
    request = w.one(SATO)
    bottom_post(w, request, SATO, "田中さん\n\nお疲れ様です。\n却下します。\n"
                "領収書の枚数が合いません。\n\nよろしくお願いいたします。\n佐藤")
    assert "却下しました" in w.one(SATO).subject
    rejected = w.one(TANAKA)
    assert "却下されました" in rejected.subject and "領収書の枚数が合いません。" in rejected.body
    assert w.case(number).state == "rejected"
    assert decisions(w, number) == ["領収書の枚数が合いません。"]


def test_bottom_posted_english_return_with_signature(world: World) -> None:
    w = world
    w.send(SMITH, "Laptop", PURCHASE)
    number = number_of(w.one(SMITH))
    request = w.one(TAKAHASHI)
    bottom_post(w, request, TAKAHASHI, "Hi Smith,\n\nReturn\nPlease add the supplier's quote."
                "\n\nBest regards,\nTakahashi\nSales Department")
    w.one(TAKAHASHI)
    back = w.one(SMITH)
    assert "Please add the supplier's quote." in back.body
    assert "Best regards" not in back.body.split("Please add the supplier's quote.")[1][:80]
    assert w.case(number).state == "returned"
    assert decisions(w, number) == ["Please add the supplier's quote."]


def test_negated_reply_changes_nothing(world: World) -> None:
    w = world
    w.send(TANAKA, "大阪出張", travel("30,000", "2"))
    number = number_of(w.one(TANAKA))
    request = w.one(SATO)
    bottom_post(w, request, SATO, "お疲れ様です。\n本件は承認できません。\n\n佐藤")
    error = w.one(SATO)
    assert "承認" in error.body  # the error mail explains what a reply must say
    assert w.case(number).state == "in_review"
    assert decisions(w, number) == []
    w.reply(request, SATO, "承認")  # the request is still open
    assert "承認しました" in w.one(SATO).subject


def test_the_senders_name_under_a_reply_without_quote_is_not_the_reason(world: World) -> None:
    """Phone clients often send no quote at all: the name typed under the reason is known
    from the sender (their directory names and the From display name)."""
    w = world
    w.send(TANAKA, "大阪出張", travel("30,000", "2"))
    number = number_of(w.one(TANAKA))
    request = w.one(SATO)
    send(w.port, f"Sato Hanako <{SATO}>", "Re: " + request.subject,
         "却下します。領収書の枚数が合いません。\n\n佐藤 花子\n",
         to=str(request.message["Reply-To"]))
    assert "却下しました" in w.one(SATO).subject
    assert decisions(w, number) == ["領収書の枚数が合いません。"]
