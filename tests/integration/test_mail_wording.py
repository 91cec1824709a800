"""Mails that read well, end to end over SMTP (issue 14, items 7-10): subjects that say it
all, times in the company's zone, error mails threaded into their case and addressed by
name, and a refused request answered with the request itself, the wrong line marked."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.integration.test_outcomes import (
    BROWN,
    SMITH,
    TAKAHASHI,
    TANAKA,
    World,
    number_of,
    start_world,
    travel,
)
from tests.support import Captured, CapturingRelay


@pytest.fixture
def tokyo(tmp_path: Path, db_url: str, relay: CapturingRelay) -> Iterator[World]:
    w = start_world(tmp_path, db_url, relay, workflow={"timezone": "Asia/Tokyo"})
    yield w
    w.app.stop()


def subject(mail: Captured) -> str:
    """The subject as sent: Python's header folding doubles a space before an encoded word
    (a long subject with ¥ or Japanese), which unfolding keeps."""
    return " ".join(mail.subject.split())


def token_of(mail: Captured) -> str:
    m = re.match(r"ringi\+([a-z2-7]{32})@", str(mail.message["Reply-To"]))
    assert m, mail.message["Reply-To"]
    return m.group(1)


def test_approval_requests_say_it_all_with_times_in_tokyo(tokyo: World) -> None:
    w = tokyo
    ttl = timedelta(hours=w.app.cfg.mail.token_ttl_hours)
    w.send(SMITH, "Customer visit in Osaka", travel("54,500"))
    number = number_of(w.one(SMITH))
    ask_ja = w.one(TAKAHASHI)  # Takahashi reads Japanese
    token = token_of(ask_ja)
    assert subject(ask_ja) == (f"[{number}] 承認依頼: 出張旅費精算 / ジョン・スミス / 54,500円 / "
                              f"Customer visit in Osaka [#{token}]")
    # Asked at 09:00 UTC = 18:00 in Tokyo; the answer is possible for token_ttl_hours.
    until = (w.clock.now() + ttl).astimezone(w.app.cfg.workflow.zone)
    assert f"{until.year}年{until.month}月{until.day}日 18:00まで" in ask_ja.body, ask_ja.body
    assert "UTC" not in ask_ja.body

    w.reply(ask_ja, TAKAHASHI, "承認")
    w.new(TAKAHASHI)
    w.new(SMITH)
    ask_en = w.one(BROWN)  # Brown reads English
    token = token_of(ask_en)
    # 80 characters before the token: the title is what gives way, with an ellipsis.
    assert subject(ask_en) == (f"[{number}] Approval needed: Travel expense / John Smith / "
                              f"¥54,500 / Custom… [#{token}]")
    assert "  - Kenji Takahashi (Chief) at 2 Nov 2026 18:00 (Asia/Tokyo)" in ask_en.body
    assert f"until {until.day} {until:%b} {until.year} 18:00 (Asia/Tokyo)." in ask_en.body
    assert "UTC" not in ask_en.body


def test_reply_errors_are_threaded_into_the_case_and_greet_by_name(tokyo: World) -> None:
    w = tokyo
    w.send(SMITH, "Trip", travel("54,500"))
    number = number_of(w.one(SMITH))
    thread = f"<case.{number}@{w.app.cfg.mail.domain}>"
    ask = w.one(TAKAHASHI)
    w.reply(ask, TAKAHASHI, "承認")
    w.new(TAKAHASHI)
    w.new(SMITH)

    w.reply(ask, TAKAHASHI, "承認")  # the same request answered twice
    late = w.one(TAKAHASHI)
    assert subject(late).startswith(
        f"[{number}] 受付できません（承認済み）: 出張旅費精算 / ジョン・スミス / 54,500円"), \
        subject(late)
    assert late.body.startswith("高橋 健二 様\n\n"), late.body
    assert "この段階は2026年11月2日 18:00に高橋 健二さんが承認済みです。" in late.body
    assert thread in str(late.message["References"])
    assert str(late.message["To"]).startswith("高橋 健二 <") or \
        "takahashi@example.com" in str(late.message["To"])

    ask_en = w.one(BROWN)
    w.reply(ask_en, BROWN, "Sounds fine but let me check with the customer first")
    error = w.one(BROWN)
    # The reason stays whole; what does not fit at the end (here the amount) gives way.
    assert subject(error) == f"[{number}] Not accepted (no decision word): Travel expense / " \
        "John Smith /…", subject(error)
    assert error.body.startswith("Dear Emily Brown,\n\nYour reply on case "), error.body
    refs = str(error.message["References"]).split()
    assert thread in refs and str(error.message["In-Reply-To"]) in refs


def test_a_refused_request_comes_back_prefilled_with_the_wrong_line_marked(
        tokyo: World) -> None:
    w = tokyo
    body = travel("12,0OO").replace("Purpose: Visit\n", "")
    w.send(SMITH, "Osaka trip", body)
    refused = w.one(SMITH)
    assert subject(refused) == \
        "Not accepted (correct 2 lines and send it again): Osaka trip", subject(refused)
    assert refused.body.startswith("Dear John Smith,\n\n"), refused.body
    assert ("Amount: 12,0OO   <-- '12,0OO' is not an amount of money; write digits such as "
            "12000 or ¥12,000") in refused.body
    assert "Destination: Osaka\nDeparture date: 2026-11-10\n" in refused.body  # as written
    assert "Purpose:    <-- this field is required" in refused.body  # the missing line
    # The person corrects the one value and fills the missing line; the marks may stay.
    form = refused.body.split("send it all again (the marks may stay; ringi ignores them):\n\n",
                              1)[1]
    fixed = form.replace("Amount: 12,0OO", "Amount: 12000").replace(
        "Purpose: ", "Purpose: Visit")
    w.send(SMITH, "Osaka trip", fixed)
    ack = w.one(SMITH)
    assert "Received" in subject(ack) and "¥12,000" in subject(ack), subject(ack)

    w.send(TANAKA, "大阪出張", travel("12,0OO"))
    ja = w.one(TANAKA)
    assert subject(ja) == "受付できません（1か所を修正してください）: 大阪出張", subject(ja)
    assert ja.body.startswith("田中 太郎 様\n\n"), ja.body
    assert "Amount: 12,0OO   ←「12,0OO」は金額として読めません。12000 や ¥12,000 のように" \
        in ja.body, ja.body
