"""Decision outcomes end to end over SMTP: every mail each person receives, in order."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from daemon.app import App
from daemon.cases.reorgrunner import rerouting
from daemon.clock import FrozenClock
from daemon.directory.importer import import_directory_file
from daemon.store.models import Case, CaseEvent
from tests.support import ROOT, Captured, CapturingRelay, free_port, make_config, reply_to, send

TANAKA, SATO, SUZUKI = "tanaka@example.com", "sato@example.com", "suzuki@example.com"
SMITH, TAKAHASHI, BROWN = "smith@example.com", "takahashi@example.com", "brown@example.com"
WATANABE, KATO, ITO = "watanabe@example.com", "kato@example.com", "ito@example.com"
ADMIN, YAMAMOTO = "admin@example.com", "yamamoto@example.com"


def travel(amount: str, receipts: str = "") -> str:
    body = ("Type: travel\nDestination: Osaka\nPurpose: Visit\nDeparture date: 2026-11-10\n"
            f"Return date: 2026-11-11\nAmount: {amount}\n")
    return body + (f"Receipts: {receipts}\n" if receipts else "")


PURCHASE = "Type: purchase\nItem: Laptop\nSupplier: ACME\nQuantity: 1\nAmount: 180000\n" \
           "Category: equipment\n"


class World:
    def __init__(self, app: App, relay: CapturingRelay, clock: FrozenClock) -> None:
        self.app, self.relay, self.clock = app, relay, clock
        self.port = app.cfg.smtp.port
        self.seen: dict[str, int] = {}

    def new(self, who: str, count: int = 1) -> list[Captured]:
        """The next `count` mails to `who` since we last looked (waits for them)."""
        start = self.seen.get(who, 0)
        mails = self.relay.wait_for(who, start + count)
        self.seen[who] = start + count
        return mails[start:start + count]

    def one(self, who: str) -> Captured:
        return self.new(who)[0]

    def rerouted(self, timeout: float = 20.0) -> None:
        """Every case a reorganisation's commit moved has been rerouted (here, or by the
        runner thread that may hold the last item)."""
        self.app.reorg_runner.drain()
        deadline = time.monotonic() + timeout
        while True:
            with self.app.store.transaction() as s:
                if not rerouting(s):
                    return
            assert time.monotonic() < deadline, "cases still being rerouted"
            time.sleep(0.05)

    def nothing_more(self, *who: str) -> None:
        self.app.inbound_runner.drain()
        self.rerouted()
        self.app.outbox_runner.drain()
        for w in who:
            assert len(self.relay.to(w)) == self.seen.get(w, 0), (w, [
                m.subject for m in self.relay.to(w)[self.seen.get(w, 0):]])

    def case(self, number: str) -> Case:
        with self.app.store.transaction() as s:
            c = s.scalar(select(Case).where(Case.number == number))
            assert c is not None
            return c

    def events(self, number: str) -> list[tuple[str, str]]:
        with self.app.store.transaction() as s:
            c = s.scalar(select(Case).where(Case.number == number))
            assert c is not None
            return [(e.kind, e.detail) for e in s.scalars(
                select(CaseEvent).where(CaseEvent.case_id == c.id).order_by(CaseEvent.id))]

    def reply(self, mail: Captured, sender: str, text: str) -> None:
        reply_to(mail, self.port, sender, text)

    def send(self, sender: str, subject: str, body: str) -> None:
        send(self.port, sender, subject, body)


def number_of(mail: Captured) -> str:
    m = re.search(r"R-\d{4}-\d{6}", mail.subject)
    assert m, mail.subject
    return m.group(0)


def start_world(tmp_path: Path, db_url: str, relay: CapturingRelay,
                rules: Path | None = None, **sections: Any) -> World:
    clock = FrozenClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))  # a Monday
    cfg = make_config(tmp_path, db_url, relay.port, free_port(), **sections)
    if rules is not None:
        cfg.paths.rules = rules
    app = App(cfg, clock=clock)
    app.prepare()
    app.start()
    return World(app, relay, clock)


@pytest.fixture
def world(tmp_path: Path, db_url: str, relay: CapturingRelay) -> Iterator[World]:
    w = start_world(tmp_path, db_url, relay)
    yield w
    w.app.stop()


def test_two_phases_rejection_reapply_approved(world: World) -> None:
    """The flagship: line approval, accounting rejects (business phase: everyone told),
    the requester reapplies with corrected fields, and the case ends approved."""
    w = world
    w.send(TANAKA, "大阪出張", travel("30,000", "2"))
    ack = w.one(TANAKA)
    number = number_of(ack)
    assert "受付" in ack.subject and "佐藤" in ack.body
    req1 = w.one(SATO)
    assert "承認依頼" in req1.subject and "最初の承認者です" in req1.body
    w.reply(req1, SATO, "承認")
    assert "承認しました" in w.one(SATO).subject
    progress = w.one(TANAKA)
    assert "佐藤" in progress.subject and "加藤" in progress.body
    req2 = w.one("kato@example.com")
    assert "承認依頼" in req2.subject and "佐藤" in req2.body  # lists who already approved
    w.reply(req2, KATO, "却下\n領収書の枚数が合いません")
    assert "却下しました" in w.one(KATO).subject
    rejected = w.one(TANAKA)
    assert "却下されました" in rejected.subject and "領収書の枚数が合いません" in rejected.body
    notice = w.one(SATO)  # business-phase rejection: every earlier approver is told
    assert "後工程で却下" in notice.subject and "領収書の枚数が合いません" in notice.body
    assert w.case(number).state == "rejected"

    w.send(TANAKA, f"reapply {number}", "Receipts: 3\n")
    again = w.one(TANAKA)
    assert "再申請" in again.body
    req3 = w.one(SATO)  # routing restarts from the beginning
    w.reply(req3, SATO, "承認")
    w.new(SATO)
    w.new(TANAKA)
    w.reply(w.one(KATO), KATO, "承認")
    w.new(KATO)
    w.new(TANAKA)
    req5 = w.one(ITO)
    assert "accounting_manager" not in req5.body and "加藤" in req5.body
    w.reply(req5, ITO, "承認")
    assert "これ以上の承認は不要です" in w.one(ITO).body
    final = w.one(TANAKA)
    assert "承認されました" in final.subject
    w.nothing_more(TANAKA, SATO, KATO, ITO, SUZUKI)
    case = w.case(number)
    assert (case.state, case.round, case.fields["receipts"]) == ("approved", 2, 3)
    kinds = [k for k, _ in w.events(number)]
    assert kinds.count("decision") == 5 and "reapplied" in kinds and "corrected" in kinds
    corrected = [d for k, d in w.events(number) if k == "corrected"]
    assert corrected == ["Receipts: 2 → 3"]


def test_later_rejection_goes_back_to_previous_approver(world: World) -> None:
    w = world
    w.send(SMITH, "Trip", travel("54,500"))
    number = number_of(w.one(SMITH))
    w.reply(w.one(TAKAHASHI), TAKAHASHI, "approve")
    w.new(TAKAHASHI)
    w.new(SMITH)
    w.reply(w.one(BROWN), BROWN, "REJECT\nWhich customer?")
    confirm = w.one(BROWN)
    assert "goes back to" in confirm.body and "Takahashi" in confirm.body
    back = w.one(TAKAHASHI)  # asked again, told why
    assert "後続の承認者が却下" in back.body and "Which customer?" in back.body
    assert w.case(number).state == "in_review"
    w.reply(back, TAKAHASHI, "承認")
    w.new(TAKAHASHI)
    w.new(SMITH)
    w.reply(w.one(BROWN), BROWN, "approve")  # asked again after the re-approval
    w.new(BROWN)
    w.new(SMITH)
    w.reply(w.one(WATANABE), WATANABE, "承認")  # ¥54,500: the Department Manager too
    w.new(WATANABE)
    assert "Approved" in w.one(SMITH).subject
    w.nothing_more(SMITH, TAKAHASHI, BROWN, WATANABE)


def test_return_for_changes_then_correction(world: World) -> None:
    w = world
    w.send(SMITH, "Laptop", PURCHASE)
    number = number_of(w.one(SMITH))
    request = w.one(TAKAHASHI)
    w.reply(request, TAKAHASHI, "差し戻し\n見積書を添付してください。金額も再確認を")
    assert "差し戻し" in w.one(TAKAHASHI).subject
    returned = w.one(SMITH)
    assert "Changes requested" in returned.subject and "見積書を添付" in returned.body
    assert f"correct {number}" in returned.body
    assert w.case(number).state == "returned"
    w.send(SMITH, f"correct {number}", "Amount: 170,000\n")
    done = w.one(SMITH)
    assert "done" in done.subject and "Amount: 180,000 → 170,000" in done.body
    again = w.one(TAKAHASHI)
    assert "差し戻した申請が修正されました" in again.body and "170,000" in again.body
    w.reply(again, TAKAHASHI, "承認")
    w.new(TAKAHASHI)
    w.new(SMITH)
    w.one(BROWN)
    assert w.case(number).fields["amount"] == "170000"
    # The old request mail is dead: it was answered with RETURN.
    w.reply(request, TAKAHASHI, "承認")
    assert "受付できません" in w.one(TAKAHASHI).subject


def test_hold_then_decide_later(world: World) -> None:
    w = world
    w.send(SMITH, "Laptop", PURCHASE)
    number = number_of(w.one(SMITH))
    request = w.one(TAKAHASHI)
    w.reply(request, TAKAHASHI, "保留\n予算の確認中")
    assert "保留" in w.one(TAKAHASHI).subject
    hold = w.one(SMITH)
    assert "On hold" in hold.subject and "予算の確認中" in hold.body
    assert w.case(number).state == "on_hold"
    w.reply(request, TAKAHASHI, "承認")  # the same mail still works after HOLD
    w.new(TAKAHASHI)
    w.new(SMITH)
    w.one(BROWN)
    assert w.case(number).state == "in_review"


def test_cancel_withdraws_the_request(world: World) -> None:
    w = world
    w.send(SMITH, "Laptop", PURCHASE)
    number = number_of(w.one(SMITH))
    request = w.one(TAKAHASHI)
    w.send(TAKAHASHI, f"cancel {number}", "")  # not the requester: refused
    assert "申請者（または代理入力者）のみ" in w.one(TAKAHASHI).body
    w.send(SMITH, f"cancel {number}", "")
    assert "cancelled" in w.one(SMITH).body
    assert "取り下げ" in w.one(TAKAHASHI).subject
    w.reply(request, TAKAHASHI, "承認")
    assert "受付できません" in w.one(TAKAHASHI).subject
    assert w.case(number).state == "cancelled"
    w.send(SMITH, f"status {number}", "")
    assert "State: cancelled" in w.one(SMITH).body


def test_registered_proxy_may_decide(world: World) -> None:
    w = world
    w.send(TANAKA, "Trip", travel("54,500"))
    number = number_of(w.one(TANAKA))
    w.reply(w.one(SATO), SATO, "承認")
    w.new(SATO)
    w.new(TANAKA)
    to_suzuki = w.one(SUZUKI)
    # Sato is registered as Suzuki's proxy: answering Suzuki's request counts.
    w.reply(to_suzuki, SATO, "承認")
    w.new(SATO)
    assert "承認されました" in w.one(TANAKA).subject
    assert any("on behalf of Ichiro Suzuki" in d for k, d in w.events(number) if k == "decision")
    # Watanabe is nobody's registered proxy for this: refused.
    w.send(SMITH, "Trip", travel("54,500"))
    w.new(SMITH)
    w.reply(w.one(TAKAHASHI), BROWN, "approve")
    assert "only that person can decide" in w.one(BROWN).body


def test_reminder_then_escalation_on_business_days(tmp_path: Path, db_url: str,
                                                   relay: CapturingRelay) -> None:
    w = start_world(tmp_path, db_url, relay)
    try:
        w.clock.set(datetime(2026, 11, 6, 9, 0, tzinfo=UTC))  # a Friday
        w.send(TANAKA, "Trip", travel("54,500"))
        number = number_of(w.one(TANAKA))
        request = w.one(SATO)
        w.clock.set(datetime(2026, 11, 9, 9, 0, tzinfo=UTC))  # Monday: one business day
        assert w.app.timers.run_once() == 0
        w.clock.set(datetime(2026, 11, 10, 9, 0, tzinfo=UTC))  # Tuesday: two
        assert w.app.timers.run_once() == 1
        reminder = w.one(SATO)
        assert "【催促】" in reminder.body
        assert w.app.timers.run_once() == 0  # reminded once only
        w.clock.set(datetime(2026, 11, 13, 9, 0, tzinfo=UTC))  # Friday: five
        assert w.app.timers.run_once() == 1
        # Sato has no registered proxy: the next rank above, Suzuki, is asked too.
        escalated = w.one(SUZUKI)
        assert "代理または上位の承認者" in escalated.body
        w.reply(escalated, SUZUKI, "承認")
        w.new(SUZUKI)
        assert "承認されました" in w.one(TANAKA).subject
        w.reply(request, SATO, "承認")  # Sato's request was withdrawn
        assert "受付できません" in w.new(SATO, 1)[0].subject
        kinds = [k for k, _ in w.events(number)]
        assert "escalated" in kinds and "withdrawn" in kinds
    finally:
        w.app.stop()


def sato_moves_to_sales(w: World, tmp_path: Path, reroute: bool) -> None:
    """Sato, the line approver of Engineering, moves to Sales; `reroute` as every import
    path of the product does (the waiting cases re-resolved in the import's transaction)."""
    org = (ROOT / "samples" / "organisation.toml").read_text()
    moved = tmp_path / "org.toml"
    moved.write_text(org.replace('unit = "eng"\nposition = "chief"',
                                 'unit = "sales"\nposition = "chief"', 1))
    diff = import_directory_file(w.app.store, moved, w.clock.now(),
                                 after=w.app.reroute_after_import if reroute else None)
    assert diff is not None and any("person sato" in x for x in diff.changed)


def test_approver_who_leaves_with_nobody_above_holds_the_case(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    """The import itself re-resolves: the line step waited for Sato; nobody else in
    Engineering ranks within the step's limit, so the case is held, not moved on to the
    ¥50,000 step and never approved."""
    w = start_world(tmp_path, db_url, relay)
    try:
        w.send(TANAKA, "Trip", travel("54,500"))
        number = number_of(w.one(TANAKA))
        request = w.one(SATO)
        sato_moves_to_sales(w, tmp_path, reroute=True)
        assert w.case(number).state == "held"  # by the import, before any timer pass
        held = w.one(TANAKA)
        assert "承認者待ちで停止中" in held.subject and "理由: 上位に承認者がいません" in held.body
        alert = w.one(ADMIN)
        assert "held" in alert.subject and number in alert.body
        gone = w.one(SATO)  # told the case is no longer theirs
        assert "ご判断は不要" in gone.subject
        w.reply(request, SATO, "承認")  # the old request no longer works
        assert "受付できません" in w.one(SATO).subject
        w.nothing_more(SUZUKI, TANAKA)  # nobody asked, nothing approved
        assert w.app.timers.run_once() == 0  # held: nothing more each pass
        w.nothing_more(SUZUKI, TANAKA, SATO, ADMIN)
        kinds = [k for k, _ in w.events(number)]
        assert "withdrawn" in kinds and "held" in kinds and "approved" not in kinds
    finally:
        w.app.stop()


def test_due_step_whose_approver_left_is_held_not_reminded(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    """The timers' guard for a due step: after an import that did not re-resolve, the
    reminder due to Sato finds he no longer holds the post, so the case is held instead."""
    w = start_world(tmp_path, db_url, relay)
    try:
        w.send(TANAKA, "Trip", travel("54,500"))
        number = number_of(w.one(TANAKA))
        request = w.one(SATO)
        sato_moves_to_sales(w, tmp_path, reroute=False)
        assert w.app.timers.run_once() == 0  # not due yet: the step is left alone
        assert w.case(number).state == "in_review"
        w.clock.set(datetime(2026, 11, 4, 9, 0, tzinfo=UTC))  # two business days: reminder
        assert w.app.timers.run_once() == 1
        held = w.one(TANAKA)
        assert "承認者待ちで停止中" in held.subject and "理由: 上位に承認者がいません" in held.body
        assert "held" in w.one(ADMIN).subject
        gone = w.one(SATO)  # told the case is no longer theirs, not reminded
        assert "ご判断は不要" in gone.subject and "【催促】" not in gone.body
        w.reply(request, SATO, "承認")  # the old request no longer works
        assert "受付できません" in w.one(SATO).subject
        w.nothing_more(SUZUKI, TANAKA)  # nobody asked, nothing approved
        assert w.case(number).state == "held"
        assert w.app.timers.run_once() == 0  # held: nothing more each pass
        kinds = [k for k, _ in w.events(number)]
        assert "left" in kinds and "held" in kinds and "approved" not in kinds
    finally:
        w.app.stop()


def custom_rules(tmp_path: Path, name: str, body: str) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    (rules / "workflows" / name).write_text(body)
    return rules


def test_all_of_and_admin_fallback(tmp_path: Path, db_url: str,
                                   relay: CapturingRelay) -> None:
    rules = custom_rules(tmp_path, "design_release.toml", '''
name = "design_release"
case_types = ["design_release"]
on_vacant = "admin"  # this workflow keeps the administrator fallback
[[phases]]
name = "board"
  [[phases.steps]]
  name = "board"
  resolver = "fixed"
  people = ["yamamoto", "suzuki"]
  mode = "all"
  [[phases.steps]]
  name = "auditor"
  resolver = "role"
  role = "auditor"
''')
    w = start_world(tmp_path, db_url, relay, rules=rules)
    try:
        w.send(TANAKA, "Release", "Type: design_release\nDocument number: D-1\n"
               "Revision: A\nSummary: first release\n")
        number = number_of(w.one(TANAKA))
        to_y, to_s = w.one(YAMAMOTO), w.one(SUZUKI)
        assert "全員の承認が必要です" in to_y.body
        w.reply(to_y, YAMAMOTO, "承認")
        w.new(YAMAMOTO)
        w.nothing_more(ADMIN)  # still waiting for Suzuki
        w.reply(to_s, SUZUKI, "承認")
        w.new(SUZUKI)
        w.new(TANAKA)
        to_admin = w.one(ADMIN)  # nobody holds "auditor": the administrator is asked
        assert "no approver could be found" in to_admin.body
        assert "nobody holds auditor" in to_admin.body
        w.reply(to_admin, ADMIN, "approve")
        w.new(ADMIN)
        assert "承認されました" in w.one(TANAKA).subject
        assert w.case(number).state == "approved"
    finally:
        w.app.stop()


def test_template_versions_and_route_edits(tmp_path: Path, db_url: str,
                                           relay: CapturingRelay) -> None:
    rules = custom_rules(tmp_path, "extra.toml", "")
    (rules / "workflows" / "extra.toml").unlink()
    w = start_world(tmp_path, db_url, relay, rules=rules)
    w.send(TANAKA, "Old rules", travel("30,000"))
    old = number_of(w.one(TANAKA))
    w.one(SATO)
    w.app.stop()
    travel_toml = rules / "workflows" / "travel.toml"
    travel_toml.write_text(travel_toml.read_text().replace("case.amount >= 50000",
                                                           "case.amount >= 10000"))
    w = start_world(tmp_path, db_url, relay, rules=rules)  # a restart loads version 2
    w.seen = {TANAKA: 1, SATO: 1}
    try:
        w.send(TANAKA, "New rules", travel("30,000"))
        new = number_of(w.new(TANAKA)[0])
        request_new = w.one(SATO)
        assert new in request_new.subject
        w.reply(w.relay.to(SATO)[0], SATO, "承認")  # the old case, on version 1
        w.new(SATO)
        w.new(TANAKA)
        assert w.case(old).state == "approved"  # v1: ¥30,000 needs no manager
        w.reply(request_new, SATO, "承認")
        w.new(SATO)
        w.new(TANAKA)
        w.one(SUZUKI)  # v2: from ¥10,000 the Department Manager approves too
        assert any("workflow travel v1" in d for _, d in w.events(old))
        assert any("workflow travel v2" in d for _, d in w.events(new))
        # The administrator adds the director before Suzuki's step, then nothing else.
        w.send(TANAKA, f"route {new} add yamamoto", "")  # not authorised
        assert "may not alter routes" in w.one(TANAKA).body
        w.send(ADMIN, f"route {new} add yamamoto", "Board wants a look")
        assert "Now asked" in w.one(ADMIN).body
        to_y = w.one(YAMAMOTO)
        w.reply(to_y, YAMAMOTO, "承認")
        w.new(YAMAMOTO)
        w.new(TANAKA)
        w.one(SUZUKI)  # Suzuki's step is asked again after the added approval
        w.send(ADMIN, f"route {new} skip", "")
        w.new(ADMIN)
        assert "承認されました" in w.one(TANAKA).subject
        edits = [d for k, d in w.events(new) if k == "route edit"]
        assert edits[0].startswith("yamamoto added before step line/managers")
        assert edits[1].startswith("step line/managers skipped")
    finally:
        w.app.stop()


def test_entered_on_behalf_and_notify_step(tmp_path: Path, db_url: str,
                                           relay: CapturingRelay) -> None:
    rules = custom_rules(tmp_path, "purchase.toml", '''
name = "purchase"
case_types = ["purchase"]
[[phases]]
name = "line"
  [[phases.steps]]
  name = "tell-director"
  resolver = "fixed"
  people = ["yamamoto"]
  action = "notify"
  [[phases.steps]]
  name = "line"
  resolver = "rank-above"
  max_rank = 30
''')
    w = start_world(tmp_path, db_url, relay, rules=rules)
    try:
        # Smith enters a purchase for Takahashi, a colleague in Sales.
        w.send(SMITH, "Monitor for Takahashi", PURCHASE + "Requester: takahashi\n")
        ack_proxy, ack_requester = w.one(SMITH), w.one(TAKAHASHI)
        number = number_of(ack_proxy)
        assert number in ack_requester.subject and "受付" in ack_requester.subject
        fyi = w.one(YAMAMOTO)  # the notify step informs and moves on
        assert "ご参考" in fyi.subject and "ご判断は不要です" in fyi.body
        request = w.one(BROWN)  # the route starts from the requester, Takahashi
        w.reply(request, BROWN, "hold\nchecking the budget")
        w.new(BROWN)
        # One notice, two readers: each sees the approver named in their own language.
        assert "by Emily Brown (Section Manager)" in w.one(SMITH).body
        assert "ブラウン" in w.one(TAKAHASHI).body and "課長" in w.relay.to(TAKAHASHI)[-1].body
        w.reply(request, BROWN, "approve")
        w.new(BROWN)
        assert "Approved" in w.one(SMITH).subject  # the proxy hears the result too
        assert "承認されました" in w.one(TAKAHASHI).subject
        case = w.case(number)
        assert (case.requester_id, case.entered_by_id) == ("takahashi", "smith")
        assert ("notified", "tell-director: for information only") in w.events(number)
        w.nothing_more(YAMAMOTO)
        # Tanaka (Engineering) may not enter requests for Smith (Sales).
        w.send(TANAKA, "For Smith", PURCHASE + "申請者: smith\n")
        refusal = w.one(TANAKA)
        assert "代理申請はできません" in refusal.body
    finally:
        w.app.stop()
