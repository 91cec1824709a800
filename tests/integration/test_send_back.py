"""Rejections that go back (SPEC 5): each one undoes the approvals from the earlier ask on,
so a sent-back approver who rejects sends the case further back, never to themselves; and an
escalation decided by a proxy keeps the route's footing. Real mail in and out."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from daemon.directory.importer import import_directory_file
from daemon.store.models import CaseStep
from tests.integration.orgworld import (
    ORG,
    RELEASE,
    case_steps,
    decide,
    file_release,
    org_file,
    running_world,
)
from tests.integration.test_outcomes import (
    ADMIN,
    BROWN,
    SATO,
    SMITH,
    SUZUKI,
    TAKAHASHI,
    TANAKA,
    WATANABE,
    YAMAMOTO,
    World,
    custom_rules,
    number_of,
    travel,
)
from tests.support import CapturingRelay, ringi, wait_until, write_config


def steps_of(w: World, number: str) -> list[tuple[str, str, str]]:
    """(approver, kind, state) of every step, in the order they were asked."""
    w.case(number)  # fails if there is no such case
    return [(st.approver_id, st.kind, st.state) for st in case_steps(w, number)]


def test_double_rejection_goes_back_step_by_step(tmp_path: Path, db_url: str,
                                                 relay: CapturingRelay) -> None:
    """Takahashi, Brown, Watanabe approve in turn (¥54,500 from Sales). Watanabe rejects:
    back to Brown. Brown rejects: back to Takahashi, not to Brown again. Takahashi rejects:
    the requester has it. Each undone approval shows as such."""
    with running_world(tmp_path, db_url, relay) as w:
        w.send(SMITH, "Trip", travel("54,500"))
        number = number_of(w.one(SMITH))
        decide(w, w.one(TAKAHASHI), TAKAHASHI, "承認")
        decide(w, w.one(BROWN), BROWN, "approve")
        w.reply(w.one(WATANABE), WATANABE, "却下\n顧客名がありません")
        assert "ブラウン" in w.one(WATANABE).body  # goes back to Brown
        back_to_brown = w.one(BROWN)
        assert "顧客名がありません" in back_to_brown.body
        w.nothing_more(TAKAHASHI)  # his approval stands: nothing to tell him yet
        assert steps_of(w, number)[:3] == [("takahashi", "approver", "approved"),
                                           ("brown", "approver", "undone"),
                                           ("watanabe", "approver", "rejected")]

        w.reply(back_to_brown, BROWN, "REJECT\nThe purpose is too vague")
        confirm = w.one(BROWN)
        assert "goes back to" in confirm.body and "Takahashi" in confirm.body
        w.nothing_more(BROWN)  # never asked again by her own rejection
        back_to_takahashi = w.one(TAKAHASHI)
        assert "後続の承認者が却下" in back_to_takahashi.body
        assert "The purpose is too vague" in back_to_takahashi.body
        assert "エミリー・ブラウン (課長): The purpose" in back_to_takahashi.body  # his language
        assert w.case(number).state == "in_review"

        w.reply(back_to_takahashi, TAKAHASHI, "却下\n出張を取りやめます")
        assert "却下しました" in w.one(TAKAHASHI).subject
        w.nothing_more(TAKAHASHI, BROWN, WATANABE)  # the first approver: no one before him
        final = wait_until(lambda: [m for m in w.relay.to(SMITH) if "Rejected" in m.subject],
                           what="the rejection")[-1]
        assert "出張を取りやめます" in final.body
        assert w.case(number).state == "rejected"
        assert steps_of(w, number) == [("takahashi", "approver", "undone"),
                                       ("brown", "approver", "undone"),
                                       ("watanabe", "approver", "rejected"),
                                       ("brown", "returned", "rejected"),
                                       ("takahashi", "returned", "rejected")]
        undone = [d for k, d in w.events(number) if k == "approval undone"]
        assert len(undone) == 2 and "rejected by Emily Brown" in undone[1]
        shown = ringi(write_config(w.app.cfg, tmp_path), "case", "show", number)
        assert shown.exit_code == 0, shown.output
        assert "brown via rank-above: undone" in shown.output
        assert "takahashi via rank-above: undone" in shown.output


BOARD = '''
name = "design_release"
case_types = ["design_release"]
[[phases]]
name = "review"
  [[phases.steps]]
  name = "author-lead"
  resolver = "fixed"
  people = ["takahashi"]
  [[phases.steps]]
  name = "board"
  resolver = "fixed"
  people = ["brown", "watanabe"]
  mode = "all"
  [[phases.steps]]
  name = "director"
  resolver = "fixed"
  people = ["yamamoto"]
'''


def test_all_of_ask_is_asked_again_whole_and_undone_approvers_are_told(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    with running_world(tmp_path, db_url, relay,
                       rules=custom_rules(tmp_path, "design_release.toml", BOARD)) as w:
        w.send(TANAKA, "Release", RELEASE)
        number = number_of(w.one(TANAKA))
        decide(w, w.one(TAKAHASHI), TAKAHASHI, "承認")
        to_b, to_w = w.one(BROWN), w.one(WATANABE)
        decide(w, to_b, BROWN, "approve")
        decide(w, to_w, WATANABE, "承認")
        # The director rejects: back to the board, both of them, as an all-of ask again.
        decide(w, w.one(YAMAMOTO), YAMAMOTO, "却下\n図面番号の確認を")
        again_b, again_w = w.one(BROWN), w.one(WATANABE)
        assert "図面番号の確認を" in again_b.body and "全員の承認が必要です" in again_w.body
        w.nothing_more(TAKAHASHI, BROWN, WATANABE)  # both asked again: no notice besides

        # Brown approves again, Watanabe rejects: back to Takahashi; Brown's approval is
        # undone and she is told, naming who rejected and to whom it went.
        decide(w, again_b, BROWN, "approve")
        decide(w, again_w, WATANABE, "却下\n版数が違います")
        notice = w.one(BROWN)
        assert "Your approval was undone" in notice.subject
        assert "Yuki Watanabe" in notice.body and "Kenji Takahashi" in notice.body
        assert "版数が違います" in notice.body
        back = w.one(TAKAHASHI)
        assert "後続の承認者が却下" in back.body
        w.nothing_more(BROWN, WATANABE, YAMAMOTO)
        states = steps_of(w, number)
        assert states[0] == ("takahashi", "approver", "undone")
        assert [x for x in states if x[0] == "brown"] == [("brown", "approver", "undone"),
                                                          ("brown", "returned", "undone")]

        # Takahashi approves again: the route goes on from his step, the board is asked.
        decide(w, back, TAKAHASHI, "承認")
        decide(w, w.one(BROWN), BROWN, "approve")
        decide(w, w.one(WATANABE), WATANABE, "承認")
        decide(w, w.one(YAMAMOTO), YAMAMOTO, "承認")
        assert w.case(number).state == "approved"
        approved = wait_until(lambda: [m for m in w.relay.to(TANAKA)
                                       if "承認されました" in m.subject], what="approved")[-1]
        # The approvers' list counts what stands: one line each, none of the undone ones.
        listed = [line for line in approved.body.splitlines() if line.startswith("  - ")]
        assert len(listed) == 4, listed
        for name in ("高橋 健二", "エミリー・ブラウン", "渡辺 由紀", "山本 誠"):
            assert sum(name in line for line in listed) == 1, (name, listed)


def test_escalation_to_a_proxy_in_another_unit_keeps_the_footing(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    """Takahashi (Sales, Chief) is late; his registered proxy Sato is in Engineering. Her
    approval of the escalated step stands for his: the route climbs Sales (Brown, Section
    Manager), not Engineering (where nobody holds rank 30 and Suzuki would be asked)."""
    with running_world(tmp_path, db_url, relay) as w:
        with_proxy = org_file(tmp_path, ORG + '\n[[relations]]\napprover = "sato"\n'
                              'person = "takahashi"\nkind = "proxy"\nvalid_from = 2026-01-01\n')
        assert import_directory_file(w.app.store, with_proxy, w.clock.now()) is not None
        w.clock.set(datetime(2026, 11, 6, 9, 0, tzinfo=UTC))  # a Friday
        w.send(SMITH, "Trip", travel("54,500"))
        number = number_of(w.one(SMITH))
        request = w.one(TAKAHASHI)
        w.clock.set(datetime(2026, 11, 10, 9, 0, tzinfo=UTC))
        assert w.app.timers.run_once() == 1  # reminder
        w.one(TAKAHASHI)
        w.clock.set(datetime(2026, 11, 13, 9, 0, tzinfo=UTC))
        assert w.app.timers.run_once() == 1  # escalation to the proxy
        escalated = w.one(SATO)
        assert "代理または上位の承認者" in escalated.body
        decide(w, escalated, SATO, "承認")
        to_brown = w.one(BROWN)  # the rank above Takahashi, in Sales
        assert "Approval needed" in to_brown.subject
        w.nothing_more(SUZUKI)
        w.reply(request, TAKAHASHI, "承認")  # his own request was withdrawn
        assert "受付できません" in w.one(TAKAHASHI).subject
        decide(w, to_brown, BROWN, "approve")
        decide(w, w.one(WATANABE), WATANABE, "承認")  # ¥54,500: the Department Manager too
        assert w.case(number).state == "approved"
        w.nothing_more(SUZUKI)
        with w.app.store.transaction() as s:
            esc = s.scalar(select(CaseStep).where(CaseStep.kind == "escalation"))
            assert esc is not None and (esc.approver_id, (esc.pos or {}).get("as")) == (
                "sato", "takahashi")


EXECUTIVE = '''
name = "purchase"
case_types = ["purchase"]
[[phases]]
name = "line"
  [[phases.steps]]
  name = "line"
  resolver = "rank-above"
  max_rank = 40
[[phases]]
name = "executive"
  [[phases.steps]]
  name = "director"
  resolver = "fixed"
  people = ["yamamoto"]
[[phases]]
name = "procurement"
kind = "business"
  [[phases.steps]]
  name = "procurement"
  resolver = "business"
  groups = { purchase = { unit = "procurement", roles = ["buyer", "purchasing_manager"] } }
'''


def test_an_undone_automatic_approval_gives_its_budget_back_once(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    """Watanabe's stored conditions approve (¥180,000 of his monthly budget); the director
    rejects, so the case goes back to Watanabe in person and the amount comes back; his
    approval in person takes it again; a final rejection gives it back once more."""
    from tests.integration.test_budget_conditions import MONTHLY, consumed
    from tests.integration.test_conditions import CLARK
    from tests.integration.test_recovery import up_to_watanabe, with_rules

    rules = with_rules(tmp_path, MONTHLY)
    (rules / "workflows" / "purchase.toml").write_text(EXECUTIVE)
    with running_world(tmp_path, db_url, relay, rules=rules, paths={"rules": str(rules)}) as w:
        number = up_to_watanabe(w, "180,000")
        to_director = w.one(YAMAMOTO)
        assert consumed(w) == Decimal("180000.00")
        decide(w, to_director, YAMAMOTO, "却下\n見積書を添付してください")
        asked = wait_until(lambda: [m for m in w.relay.to(WATANABE)
                                    if number in m.subject and "#" in m.subject], what="ask")
        assert "見積書を添付してください" in asked[-1].body
        assert consumed(w) == Decimal(0)  # the undone automatic approval gave it back
        w.reply(asked[-1], WATANABE, "承認")
        decide(w, w.one(YAMAMOTO), YAMAMOTO, "承認")
        assert consumed(w) == Decimal("180000.00")  # taken once by his approval in person
        w.reply(w.one(CLARK), CLARK, "reject\nNo budget code")
        wait_until(lambda: w.case(number).state == "rejected", what="rejected")
        assert consumed(w) == Decimal(0)
        released = [d for k, d in w.events(number) if k == "budget released"]
        assert len(released) == 2 and all("180,000.00" in d for d in released)
        assert [x[2] for x in steps_of(w, number) if x[0] == "watanabe"] == ["undone",
                                                                             "approved"]


def test_an_added_approver_escalated_to_a_proxy_still_comes_before_the_step(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    """The administrator adds Brown before Suzuki's step; Brown is late and his registered
    proxy Takahashi approves the escalated ask. That approval stands for Brown's, which goes
    before the step: Suzuki is asked again, and the case is never approved without him."""
    with running_world(tmp_path, db_url, relay) as w:
        w.clock.set(datetime(2026, 11, 6, 9, 0, tzinfo=UTC))  # a Friday
        number, _ = file_release(w)
        w.send(ADMIN, f"route {number} add brown", "Sales wants a look")
        assert "Now asked" in w.one(ADMIN).body
        w.one(BROWN)
        w.clock.set(datetime(2026, 11, 10, 9, 0, tzinfo=UTC))
        assert w.app.timers.run_once() == 1  # Brown's reminder
        w.one(BROWN)
        w.clock.set(datetime(2026, 11, 13, 9, 0, tzinfo=UTC))
        assert w.app.timers.run_once() == 1  # escalated to his proxy
        escalated = w.one(TAKAHASHI)
        decide(w, escalated, TAKAHASHI, "承認")
        again = w.one(SUZUKI)
        assert number in again.subject and "承認依頼" in again.subject, again.subject
        assert w.case(number).state == "in_review"
        assert steps_of(w, number)[-1] == ("suzuki", "approver", "pending")
        decide(w, again, SUZUKI, "承認")
        assert w.case(number).state == "approved"
