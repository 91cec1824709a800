"""One mail instead of thirty (SPEC C.14), end to end over SMTP on both backends.

The daily digest at the company's hour (Tokyo), once a day, never empty, never to someone
who opted out; `pending` sends it at once; a reply with several decision lines applies each
exactly like a single reply and is answered by one confirmation.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from daemon.cases.digests import DailyDigests, send_digest
from daemon.cases.states import CaseState
from daemon.directory.lookup import member
from daemon.store.models import Case, CaseStep
from tests.integration.test_outcomes import (
    BROWN,
    SATO,
    SMITH,
    SUZUKI,
    TAKAHASHI,
    TANAKA,
    World,
    number_of,
    start_world,
    travel,
)
from tests.support import CapturingRelay, reply_to, send

QUIET = {"reminder_after_days": 20, "escalate_after_days": 30, "timer_seconds": 3600}


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def three_for_sato(w: World) -> list[str]:
    """Tanaka files three trips; Sato is asked for each."""
    numbers = []
    for title in ("Osaka visit", "Nagoya fair", "Sendai client"):
        w.send(TANAKA, title, travel("54,500"))
        numbers.append(number_of(w.one(TANAKA)))
    w.new(SATO, 3)
    return numbers


def step_state(w: World, number: str, approver: str) -> list[str]:
    with w.app.store.transaction() as s:
        case_id = s.scalar(select(Case.id).where(Case.number == number))
        return [st.state for st in s.scalars(select(CaseStep).where(
            CaseStep.case_id == case_id, CaseStep.approver_id == approver)
            .order_by(CaseStep.seq))]


def test_daily_digest_at_the_tokyo_hour_once_a_day(tmp_path: Path, db_url: str,
                                                   relay: CapturingRelay) -> None:
    w = start_world(tmp_path, db_url, relay, workflow={
        **QUIET, "timezone": "Asia/Tokyo", "digest_hour": 8})
    try:
        w.clock.set(at(2, 22, 0))  # 07:00 on Tuesday 3 November in Tokyo
        numbers = three_for_sato(w)
        assert w.app.timers.run_once() == 0
        w.clock.set(at(2, 22, 59))  # 07:59 in Tokyo: not yet
        assert w.app.timers.run_once() == 0
        w.nothing_more(SATO)
        w.clock.set(at(2, 23, 0))  # 08:00 in Tokyo
        assert w.app.timers.run_once() == 1
        digest = w.one(SATO)
        assert "本日の承認待ち一覧: 3件" in digest.subject
        assert re.search(r"\[#[a-z2-7]{32}\]$", digest.subject)
        assert re.match(r"ringi\+[a-z2-7]{32}@", str(digest.message["Reply-To"]))
        for n in numbers:
            assert f"申請 {n}: 出張" in digest.body
        assert "田中 太郎" in digest.body and "54,500円" in digest.body
        assert "依頼日時 2026年11月3日 07:00" in digest.body  # asked, in Tokyo time
        assert digest.body.count("mailto:ringi+") == 12  # four links per case
        assert "毎日8時" in digest.body
        assert w.app.timers.run_once() == 0  # once a day
        w.clock.set(at(3, 14, 59))  # 23:59 in Tokyo, still the same day
        assert w.app.timers.run_once() == 0
        w.clock.set(at(3, 15, 0))  # midnight in Tokyo: a new day, but before 08:00
        assert w.app.timers.run_once() == 0
        w.nothing_more(SATO, TANAKA, SUZUKI, TAKAHASHI)

        w.clock.set(at(3, 23, 30))  # 08:30 on 4 November
        assert w.app.timers.run_once() == 1
        assert "3件" in w.one(SATO).subject
        w.send(SATO, "ダイジェスト 停止", "")
        assert "停止しました" in w.one(SATO).subject
        w.send(SATO, "digest off", "")  # again: nothing changes, and it says so
        assert "変更はありません" in w.one(SATO).body
        w.clock.set(at(4, 23, 0))  # 5 November: opted out
        assert w.app.timers.run_once() == 0
        w.nothing_more(SATO)
        w.send(SATO, "digest on", "")
        assert "再開しました" in w.one(SATO).subject
        w.clock.set(at(5, 23, 0))  # 6 November: back
        assert w.app.timers.run_once() == 1
        latest = w.one(SATO)
        assert "3件" in latest.subject
        # Everything decided: nothing waits, no digest (not even an empty one).
        w.reply(latest, SATO, "\n".join(f"{n} 却下 予算超過" for n in numbers))
        assert "実施3件" in w.one(SATO).subject
        w.new(TANAKA, 3)
        w.clock.set(at(6, 23, 0))
        assert w.app.timers.run_once() == 0
        w.nothing_more(SATO, TANAKA, SUZUKI)
    finally:
        w.app.stop()


def test_pending_then_several_decisions_in_one_reply(tmp_path: Path, db_url: str,
                                                     relay: CapturingRelay) -> None:
    w = start_world(tmp_path, db_url, relay, workflow=QUIET)
    try:
        first, second, third = three_for_sato(w)
        w.send(SMITH, "Trip", travel("54,500"))  # asked of Takahashi: not in Sato's digest
        other = number_of(w.one(SMITH))
        w.one(TAKAHASHI)

        w.send(SATO, "承認待ち", "")
        digest = w.one(SATO)
        assert "承認待ち一覧: 3件" in digest.subject and other not in digest.body
        reply = (f"お疲れ様です。\n\n{first} approve\n{second} reject: receipts are missing\n"
                 f"{other} approve\n\nよろしくお願いいたします。\n佐藤")
        w.reply(digest, SATO, reply)
        confirmation = w.one(SATO)  # one mail for all three lines
        assert "実施2件、未実施1件" in confirmation.subject
        body = confirmation.body
        assert f"{first} 承認: Osaka visit" in body and "鈴木 一郎" in body  # goes on to him
        assert f"{second} 却下（receipts are missing）" in body
        assert f"  {other} approve\n    ご返信の一覧にない申請です" in body
        assert step_state(w, first, "sato") == ["approved"]
        assert w.case(second).state == CaseState.REJECTED
        assert w.case(third).state == CaseState.IN_REVIEW and \
            step_state(w, third, "sato") == ["pending"]
        assert step_state(w, other, "takahashi") == ["pending"]
        assert "承認依頼" in w.one(SUZUKI).subject  # the route went on, as for one reply
        progress, rejected = w.new(TANAKA, 2)
        assert first in progress.subject and "佐藤" in progress.subject
        assert "却下されました" in rejected.subject and "receipts are missing" in rejected.body
        reasons = [d for k, d in w.events(second) if k == "decision"]
        assert len(reasons) == 1
        w.nothing_more(SATO, TANAKA, SUZUKI, TAKAHASHI)

        # The same reply again changes nothing: each line was decided once.
        w.reply(digest, SATO, reply)
        again = w.one(SATO)
        assert "実施0件、未実施3件" in again.subject
        assert "佐藤 花子さんが承認済みです" in again.body
        assert "佐藤 花子さんが却下済みです" in again.body
        w.nothing_more(SATO, TANAKA, SUZUKI, TAKAHASHI)
        assert [k for k, _ in w.events(first)].count("decision") == 1

        # Someone else answering Sato's digest changes nothing (Brown is not her proxy).
        w.reply(digest, BROWN, f"{third} approve")
        refused = w.one(BROWN)
        assert "not yours" in refused.subject and "Hanako Sato" in refused.body
        assert step_state(w, third, "sato") == ["pending"]
        # A reply with no decision line gets help, and nothing changes.
        w.reply(digest, SATO, "ありがとうございます。後ほど確認します。")
        helped = w.one(SATO)
        assert "判断の行がありません" in helped.subject
        assert f"{third} 承認" in helped.body and "Sendai client" in helped.body
        # Japanese decision words, with a reason.
        w.reply(digest, SATO, f"{third} 承認 出張先の確認済み")
        done = w.one(SATO)
        assert f"{third} 承認（出張先の確認済み）" in done.body and "実施1件" in done.subject
        assert step_state(w, third, "sato") == ["approved"]
        w.new(TANAKA)
        w.new(SUZUKI)  # asked next for the third case
        # Sato is Suzuki's registered proxy: she may answer his digest for him.
        w.send(SUZUKI, "pending", "")
        his = w.one(SUZUKI)
        assert "承認待ち一覧: 2件" in his.subject
        w.reply(his, SATO, f"{first} 承認")
        assert "実施1件" in w.one(SATO).subject
        assert step_state(w, first, "suzuki") == ["approved"]
        assert any("on behalf of Ichiro Suzuki" in d for k, d in w.events(first)
                   if k == "decision")
        assert "承認されました" in w.one(TANAKA).subject
        w.nothing_more(SATO, TANAKA, SUZUKI, TAKAHASHI, BROWN)
    finally:
        w.app.stop()


def test_pending_with_nothing_waiting_and_single_links(tmp_path: Path, db_url: str,
                                                       relay: CapturingRelay) -> None:
    w = start_world(tmp_path, db_url, relay, workflow=QUIET)
    try:
        w.send(SMITH, "pending", "")
        empty = w.one(SMITH)
        assert empty.subject == "Nothing is waiting for your decision"
        assert "No case is waiting" in empty.body and empty.message["Reply-To"] is None
        w.send(TANAKA, "Trip", travel("54,500"))
        number = number_of(w.one(TANAKA))
        w.one(SATO)
        w.send(SATO, "pending", "")
        digest = w.one(SATO)
        # A case's own link answers that step alone, like its approval request.
        link = re.search(r"承認: mailto:(ringi\+[a-z2-7]{32}@[^?]+)\?", digest.body)
        assert link
        reply_to(digest, w.port, SATO, "承認", to=link.group(1))
        assert "承認しました" in w.one(SATO).subject  # the single reply's confirmation
        assert step_state(w, number, "sato") == ["approved"]
        w.reply(digest, SATO, f"{number} 承認")  # and the digest line no longer counts
        assert "未実施1件" in w.one(SATO).subject
        assert "佐藤" in w.one(TANAKA).subject  # (the first case's progress)

        # A case named twice in one reply: neither line is applied.
        w.send(TANAKA, "Trip", travel("54,500"))
        second = number_of(w.one(TANAKA))
        w.one(SATO)
        w.send(SATO, "pending", "")
        digest = w.one(SATO)
        w.reply(digest, SATO, f"{second} approve\n{second} reject: no")
        twice = w.one(SATO)
        assert "実施0件、未実施2件" in twice.subject and "2回以上" in twice.body
        assert step_state(w, second, "sato") == ["pending"]
        # A digest past its expiry is answered, and nothing changes.
        w.clock.set(w.clock.now() + timedelta(days=15))
        w.reply(digest, SATO, f"{second} approve")
        assert "有効期限切れ" in w.one(SATO).subject
        assert step_state(w, second, "sato") == ["pending"]
        w.nothing_more(SATO, TANAKA)
    finally:
        w.app.stop()


def test_a_reply_that_lost_the_digests_token(tmp_path: Path, db_url: str,
                                             relay: CapturingRelay) -> None:
    """Sent to the plain address with the subject edited: known by its In-Reply-To."""
    w = start_world(tmp_path, db_url, relay, workflow=QUIET)
    try:
        first, second, _ = three_for_sato(w)
        w.send(SATO, "pending", "")
        digest = w.one(SATO)
        text = f"{first} approve\n{second} 差し戻し 日程を追記してください"
        send(w.port, SATO, "decisions", text,
             headers={"In-Reply-To": str(digest.message["Message-ID"])})
        assert "実施2件" in w.one(SATO).subject
        assert step_state(w, first, "sato") == ["approved"]
        assert w.case(second).state == CaseState.RETURNED
    finally:
        w.app.stop()


def test_two_daemons_send_the_days_digest_once(tmp_path: Path, db_url: str,
                                               relay: CapturingRelay) -> None:
    w = start_world(tmp_path, db_url, relay, workflow={**QUIET, "digest_hour": 8})
    try:
        three_for_sato(w)  # 09:00 UTC: past the hour
        other = DailyDigests(w.app.store, w.app.workflow)  # a second daemon's duty
        start = threading.Barrier(2)
        sent: list[int] = []

        def run(duty: DailyDigests) -> None:
            start.wait()
            sent.append(duty.due())

        threads = [threading.Thread(target=run, args=(d,)) for d in (w.app.timers.digests, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(sent) == [0, 1]
        assert "本日の承認待ち一覧: 3件" in w.one(SATO).subject
        # The day is claimed: even asked directly, the digest is not sent again today.
        with w.app.store.transaction() as s:
            sato = member(s, "sato")
            assert sato is not None
            assert send_digest(w.app.workflow, s, sato, w.app.workflow.today()) is None
        w.nothing_more(SATO)
    finally:
        w.app.stop()


def test_forged_replies_to_a_digest_change_nothing(tmp_path: Path, db_url: str,
                                                   relay: CapturingRelay) -> None:
    """With sender authentication on: a reply to Sato's digest that the border MTA did not
    vouch for, or whose From names two people, decides nothing and is answered to nobody."""
    mx = "mx.example.com"
    vouched = {"Authentication-Results": f"{mx}; dmarc=pass header.from=example.com"}
    w = start_world(tmp_path, db_url, relay, workflow=QUIET, mail={
        "sender_auth": "authentication-results", "trusted_authserv_ids": [mx]})
    try:
        numbers = []
        for title in ("Osaka visit", "Nagoya fair"):
            send(w.port, TANAKA, title, travel("54,500"), headers=vouched)
            numbers.append(number_of(w.one(TANAKA)))
        w.new(SATO, 2)
        send(w.port, SATO, "pending", "", headers=vouched)
        digest = w.one(SATO)
        to, subject = str(digest.message["Reply-To"]), "Re: " + digest.subject
        lines = "\n".join(f"{n} approve" for n in numbers)
        send(w.port, SATO, subject, lines, to=to)  # nobody vouched for this From
        send(w.port, f"Sato <{SATO}>, Eve <eve@evil.example>", subject, lines, to=to,
             headers=vouched, envelope_from="eve@evil.example")
        send(w.port, SATO, subject, lines, to=to, headers={
            "Authentication-Results": f"{mx}.evil.example; dmarc=pass header.from=example.com"})
        w.nothing_more(SATO, TANAKA, "eve@evil.example")
        assert [step_state(w, n, "sato") for n in numbers] == [["pending"], ["pending"]]
        send(w.port, SATO, subject, lines, to=to, headers=vouched)
        assert "実施2件" in w.one(SATO).subject
        assert [step_state(w, n, "sato") for n in numbers] == [["approved"], ["approved"]]
    finally:
        w.app.stop()
