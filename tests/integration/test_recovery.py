"""When stored conditions fail: each recovery path, co-approvals and the chain (SPEC 6).

Every scenario runs a real daemon over SMTP with a frozen clock; condition sets are written
into a copy of the sample rules. Smith (Sales) buys; Takahashi and Brown approve in person;
Watanabe's stored conditions (at most ¥500,000) then decide.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.integration.test_conditions import CLARK, purchase
from tests.integration.test_outcomes import (
    BROWN,
    SMITH,
    TAKAHASHI,
    WATANABE,
    World,
    number_of,
    start_world,
)
from tests.support import ROOT, Captured, CapturingRelay, wait_until

ITO = "ito@example.com"
SAMPLE = (ROOT / "rules" / "conditions" / "watanabe-purchase.toml").read_text()


def confirm(w: World, who: str) -> Captured:
    from tests.integration.test_condition_library import confirm as answer

    return answer(w, who)


def with_rules(tmp_path: Path, watanabe_extra: str = "", **files: str) -> Path:
    """A rules copy: Watanabe's sample set plus `watanabe_extra` keys; other sets by name."""
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    head, rest = SAMPLE.split("\n[[conditions]]", 1)
    (rules / "conditions" / "watanabe-purchase.toml").write_text(
        head + "\n" + watanabe_extra + "\n[[conditions]]" + rest)
    for name, body in files.items():
        (rules / "conditions" / f"{name}.toml").write_text(body)
    return rules


@pytest.fixture
def make_world(tmp_path: Path, db_url: str, relay: CapturingRelay) -> Iterator[
        type[World]]:
    worlds: list[World] = []

    def start(rules: Path) -> World:
        w = start_world(tmp_path, db_url, relay, rules=rules, paths={"rules": str(rules)})
        worlds.append(w)
        return w

    yield start  # type: ignore[misc]
    for w in worlds:
        w.app.stop()


def new_case(w: World, who: str, known: set[str]) -> str:
    """The number of the next case acknowledged to `who`, skipping news of older cases."""
    while True:
        number = number_of(w.one(who))
        if number not in known:
            known.add(number)
            return number


def up_to_watanabe(w: World, amount: str) -> str:
    known = {number_of(m) for m in w.relay.to(SMITH)}
    w.send(SMITH, "Purchase", purchase(amount))
    number = new_case(w, SMITH, known)
    w.reply(w.one(TAKAHASHI), TAKAHASHI, "承認")
    w.new(TAKAHASHI)
    w.new(SMITH)
    w.reply(w.one(BROWN), BROWN, "approve")
    w.new(BROWN)
    return number


RESERVE = '''on_failure = ["reserve"]

[[reservations]]
condition = "budget"
when = "case.amount <= 550000"
set = { amount = "500000" }
note = "Capped at the ¥500,000 limit; the supplier is asked for the lower price."
'''


def test_reservation_caps_the_amount_and_tells_the_requester(make_world: type[World],
                                                             tmp_path: Path) -> None:
    w = make_world(with_rules(tmp_path, RESERVE))  # type: ignore[call-arg]
    number = up_to_watanabe(w, "520,000")
    changed = w.one(SMITH)
    assert "Approved with changes" in changed.subject
    assert "amount: 520,000 -> 500,000" in changed.body
    assert "supplier is asked for the lower price" in changed.body
    w.new(SMITH)  # progress: procurement is asked
    assert "500,000" in w.one(CLARK).body
    w.nothing_more(WATANABE)
    assert w.case(number).fields["amount"] == "500000"
    kinds = [k for k, _ in w.events(number)]
    last_decision = len(kinds) - 1 - kinds[::-1].index("decision")
    assert kinds.index("examined") < kinds.index("reserved") < last_decision
    # Outside the reservation's range the case is rejected as before.
    other = up_to_watanabe(w, "560,000")
    assert "Rejected" in w.relay.wait_for(SMITH, w.seen[SMITH] + 1)[-1].subject
    assert w.case(other).state == "rejected"
    assert any(k == "reservation" and "not possible" in d for k, d in w.events(other))


REVISE = 'on_failure = ["revise"]\nrevise_wait_hours = 24\n'


def revised(limit: str) -> str:
    return SAMPLE.split("[[examples]]")[0].replace("case.amount <= 500000",
                                                   f"case.amount <= {limit}")


def test_revision_arriving_in_time_reexamines_the_case(make_world: type[World],
                                                        tmp_path: Path) -> None:
    w = make_world(with_rules(tmp_path, REVISE))  # type: ignore[call-arg]
    number = up_to_watanabe(w, "600,000")
    ask = w.one(WATANABE)
    assert "review your approval conditions" in ask.subject or "見直し" in ask.subject
    assert f"conditions case {number}" in ask.body
    assert "case.amount <= 500000" in ask.body  # the set now in force, to edit
    held = w.one(SMITH)
    assert "On hold" in held.subject
    # The wait's end in the reader's format and the company's zone (UTC here), named.
    assert re.search(r"It waits until \d{1,2} [A-Z][a-z]{2} 2026 \d\d:\d\d \(UTC\) for "
                     r".*Watanabe.* to review their approval conditions\.", held.body), held.body
    assert w.case(number).state == "awaiting_revision"
    w.nothing_more(CLARK)
    w.send(WATANABE, f"conditions case {number}", revised("700000"))
    w.nothing_more(CLARK)  # not in force before Watanabe confirms from his mailbox
    assert w.case(number).state == "awaiting_revision"
    answer = confirm(w, WATANABE)
    assert "watanabe-sales-purchases version 1, for case" in answer.body
    assert "in_review" in answer.body
    w.one(CLARK)  # approved automatically under the revised condition: procurement next
    assert w.case(number).state == "in_review"
    events = w.events(number)
    assert any(k == "conditions revised" for k, _ in events)
    assert any(k == "decision" and "automatic" in d for k, d in events)
    # The revision was for that case only: another case at ¥600,000 waits again.
    other = up_to_watanabe(w, "600,000")
    w.one(WATANABE)
    assert w.case(other).state == "awaiting_revision"


def test_revision_not_in_time_goes_on_to_the_next_path(make_world: type[World],
                                                        tmp_path: Path) -> None:
    w = make_world(with_rules(tmp_path, REVISE))  # type: ignore[call-arg]
    number = up_to_watanabe(w, "600,000")
    w.one(WATANABE)
    w.one(SMITH)
    w.clock.advance(timedelta(hours=23))
    assert w.app.timers.run_once() == 0  # still inside the wait
    assert w.case(number).state == "awaiting_revision"
    w.clock.advance(timedelta(hours=2))
    assert w.app.timers.run_once() == 1
    rejected = w.relay.wait_for(SMITH, w.seen[SMITH] + 2)[-1]  # after Brown's progress
    assert "Rejected" in rejected.subject and "budget" in rejected.body
    assert w.case(number).state == "rejected"
    assert w.app.timers.run_once() == 0  # resumed once only
    # A revision arriving after the wait changes nothing for the closed case.
    w.send(WATANABE, f"conditions case {number}", revised("700000"))
    w.one(WATANABE)
    assert w.case(number).state == "rejected"


def test_when_the_wait_ends_the_path_after_revise_is_tried(make_world: type[World],
                                                           tmp_path: Path) -> None:
    """["revise", "proxy"]: no revision in time, so Ito's own conditions approve."""
    rules = with_rules(tmp_path, 'on_failure = ["revise", "proxy"]\nrevise_wait_hours = 24\n'
                       'proxy = "ito"\n', ito=PROXY_SET)
    w = make_world(rules)  # type: ignore[call-arg]
    number = up_to_watanabe(w, "600,000")
    w.one(WATANABE)  # asked to revise
    assert w.case(number).state == "awaiting_revision"
    w.nothing_more(CLARK)
    w.clock.advance(timedelta(hours=25))
    assert w.app.timers.run_once() == 1
    w.one(CLARK)  # approved by the proxy's conditions: on to procurement
    assert w.case(number).state == "in_review"
    events = w.events(number)
    auto = [d for k, d in events if k == "decision" and "automatic" in d]
    assert len(auto) == 1 and "by proxy" in auto[0]
    kinds = [k for k, _ in events]
    assert kinds.index("revision requested") < kinds.index("revision wait ended")
    w.nothing_more(ITO)


PROXY_SET = '''name = "ito-sales-purchases"
setter = "ito"
subjects = { case_types = ["purchase"], units = ["sales"] }

[[conditions]]
name = "budget"
expr = "case.amount <= 1000000"
required = "at most ¥1,000,000"
'''


def test_proxy_approves_against_their_own_conditions(make_world: type[World],
                                                     tmp_path: Path) -> None:
    rules = with_rules(tmp_path, 'on_failure = ["proxy"]\nproxy = "ito"\n',
                       ito=PROXY_SET)
    w = make_world(rules)  # type: ignore[call-arg]
    number = up_to_watanabe(w, "600,000")
    w.one(CLARK)
    w.nothing_more(WATANABE, ITO)
    auto = [d for k, d in w.events(number) if k == "decision" and "automatic" in d]
    assert auto and "by proxy" in auto[-1] and "on behalf of Yuki Watanabe" in auto[-1]
    # Beyond the proxy's own conditions the proxy path fails and the case is rejected.
    other = up_to_watanabe(w, "1,200,000")
    assert "Rejected" in w.relay.wait_for(SMITH, w.seen[SMITH] + 1)[-1].subject
    assert any(k == "proxy" and "conditions fail too" in d for k, d in w.events(other))


HOLD_SET = '''name = "clark-reconsideration"
setter = "clark"
subjects = { case_types = ["purchase"] }
hold_range = "case.amount <= 800000"
'''


def test_higher_approvers_range_puts_the_case_on_hold(make_world: type[World],
                                                      tmp_path: Path) -> None:
    rules = with_rules(tmp_path, 'on_failure = ["hold"]\n', clark=HOLD_SET)
    w = make_world(rules)  # type: ignore[call-arg]
    number = up_to_watanabe(w, "600,000")
    held = w.one(SMITH)
    assert "On hold" in held.subject and "Olivia Clark reconsiders" in held.body
    ask = w.one(CLARK)
    assert "ON HOLD for your reconsideration" in ask.body and "budget" in ask.body
    assert w.case(number).state == "on_hold"
    w.reply(ask, CLARK, "approve")
    w.new(CLARK)
    assert w.case(number).state != "on_hold"
    # Outside the range: rejected; and a refused reconsideration ends the case.
    other = up_to_watanabe(w, "900,000")
    assert "Rejected" in w.relay.wait_for(SMITH, w.seen[SMITH] + 1)[-1].subject
    assert w.case(other).state == "rejected"
    third = up_to_watanabe(w, "700,000")
    w.reply(w.one(CLARK), CLARK, "reject\nNot this year")
    w.new(CLARK)
    assert w.case(third).state == "rejected"


def test_coapproval_required_by_the_conditions(make_world: type[World],
                                               tmp_path: Path) -> None:
    w = make_world(with_rules(tmp_path, 'also_required = ["ito"]\n'))  # type: ignore[call-arg]
    number = up_to_watanabe(w, "180,000")
    ask = w.one(ITO)
    assert "co-approval" in ask.body or "合議" in ask.body
    w.nothing_more(CLARK)
    w.reply(ask, ITO, "承認")
    w.new(ITO)
    w.one(CLARK)  # procurement only after the co-approval
    assert w.case(number).state == "in_review"


BROWN_SET = '''name = "brown-sales-purchases"
setter = "brown"
subjects = { case_types = ["purchase"], units = ["sales"] }

[[budgets]]
name = "monthly"
limit = 10000000
period = "month"
field = "amount"

[[conditions]]
name = "budget"
expr = "case.amount <= 1000000"
'''


def test_failure_up_the_chain_cancels_provisional_approvals(make_world: type[World],
                                                            tmp_path: Path) -> None:
    w = make_world(with_rules(tmp_path, brown=BROWN_SET))  # type: ignore[call-arg]
    w.send(SMITH, "Purchase", purchase("600,000"))
    number = number_of(w.one(SMITH))
    w.reply(w.one(TAKAHASHI), TAKAHASHI, "承認")
    w.new(TAKAHASHI)
    # Brown's conditions hold (provisionally approved), Watanabe's fail: rejected.
    assert "Rejected" in w.new(SMITH)[0].subject
    w.nothing_more(BROWN, WATANABE)
    events = w.events(number)
    assert any(k == "provisional approval cancelled" and "Yuki Watanabe" in d
               for k, d in events)
    assert w.case(number).state == "rejected"
    # Brown's provisional approval had used his budget; it is given back.
    assert any(k == "budget released" and "brown-sales-purchases/monthly" in d
               for k, d in events)
    with w.app.store.transaction() as s:
        assert w.app.workflow.budgets is not None
        assert [line.consumed for line in w.app.workflow.budgets.show(s)] == [0]


BOTH = """
name = "purchase"
case_types = ["purchase"]
[[phases]]
name = "both"
  [[phases.steps]]
  name = "both"
  resolver = "fixed"
  people = ["watanabe", "brown"]
  mode = "all"
"""


def test_asks_of_several_people_are_examined_as_a_whole(tmp_path: Path, db_url: str,
                                                         relay: CapturingRelay) -> None:
    """"any": someone's holding conditions settle it; "all": the rest are asked in person."""
    from tests.integration.test_outcomes import custom_rules

    rules = custom_rules(tmp_path, "purchase.toml", '''
name = "purchase"
case_types = ["purchase"]
[[phases]]
name = "either"
  [[phases.steps]]
  name = "either"
  resolver = "fixed"
  people = ["brown", "watanabe"]
  mode = "any"
[[phases]]
name = "both"
  [[phases.steps]]
  name = "both"
  resolver = "fixed"
  people = ["watanabe", "brown"]
  mode = "all"
''')
    w = start_world(tmp_path, db_url, relay, rules=rules, paths={"rules": str(rules)})
    try:
        w.send(SMITH, "Purchase", purchase("180,000"))
        number = number_of(w.one(SMITH))
        ask = w.one(BROWN)  # only Brown, in the second ask: Watanabe's conditions held twice
        assert "both" in w.events(number)[-1][1]
        w.nothing_more(WATANABE)
        w.reply(ask, BROWN, "approve")
        w.new(BROWN)
        assert w.case(number).state == "approved"
        auto = [d for k, d in w.events(number) if k == "decision" and "automatic" in d]
        assert len(auto) == 2
    finally:
        w.app.stop()


def test_coapprovals_in_an_all_of_ask_and_a_coapprovers_refusal(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    """All of [Watanabe, Brown]: Watanabe's conditions hold but require Ito as well, so
    Brown and Ito are asked together and both must approve. A co-approver's refusal in an
    ordinary ask ends the case rather than going back to the setter."""
    from tests.integration.test_outcomes import custom_rules

    rules = custom_rules(tmp_path, "purchase.toml", BOTH)
    path = rules / "conditions" / "watanabe-purchase.toml"
    path.write_text(path.read_text().replace("execute = true", 'execute = true\n'
                                             'also_required = ["ito"]'))
    w = start_world(tmp_path, db_url, relay, rules=rules, paths={"rules": str(rules)})
    try:
        w.send(SMITH, "Purchase", purchase("180,000"))
        number = number_of(w.one(SMITH))
        to_brown, to_ito = w.one(BROWN), w.one(ITO)
        w.nothing_more(WATANABE)
        w.reply(to_ito, ITO, "承認")
        w.new(ITO)
        assert w.case(number).state == "in_review"  # Brown is still to approve
        w.reply(to_brown, BROWN, "approve")
        w.new(BROWN)
        wait_until(lambda: w.case(number).state == "approved", what="approved")
    finally:
        w.app.stop()


def test_a_coapprovers_refusal_ends_the_case(make_world: type[World],
                                             tmp_path: Path) -> None:
    w = make_world(with_rules(tmp_path, 'also_required = ["ito"]\n'))  # type: ignore[call-arg]
    number = up_to_watanabe(w, "180,000")
    w.reply(w.one(ITO), ITO, "reject\nNot in this budget year")
    w.new(ITO)
    wait_until(lambda: w.case(number).state == "rejected", what="rejected")
    w.nothing_more(WATANABE, CLARK)


def all_of_world(make_world: type[World], tmp_path: Path, watanabe_extra: str,
                 contact: bool = False) -> World:
    """All of [Watanabe, Brown] must approve; Watanabe has stored conditions."""
    rules = with_rules(tmp_path, watanabe_extra)
    (rules / "workflows" / "purchase.toml").write_text(BOTH)
    if contact:
        path = rules / "conditions" / "watanabe-purchase.toml"
        path.write_text(path.read_text().replace("contact_on_failure = false",
                                                 "contact_on_failure = true"))
    return make_world(rules)  # type: ignore[call-arg]


def test_a_failure_in_an_all_of_ask_rejects_without_asking_the_others(
        make_world: type[World], tmp_path: Path) -> None:
    w = all_of_world(make_world, tmp_path, "")
    w.send(SMITH, "Purchase", purchase("600,000"))
    mails = w.new(SMITH, 2)  # the rejection and the acknowledgement
    number = number_of(mails[0])
    rejected = next(m for m in mails if "Rejected" in m.subject)
    assert "budget: you gave amount='600000'; required: at most ¥500,000" in rejected.body
    assert w.case(number).state == "rejected"
    w.nothing_more(BROWN, WATANABE)


def test_contact_on_failure_in_an_all_of_ask_asks_the_setter_with_the_others(
        make_world: type[World], tmp_path: Path) -> None:
    w = all_of_world(make_world, tmp_path, "", contact=True)
    w.send(SMITH, "Purchase", purchase("600,000"))
    number = number_of(w.one(SMITH))
    to_watanabe, to_brown = w.one(WATANABE), w.one(BROWN)
    assert "budget" in to_watanabe.body and "at most ¥500,000" in to_watanabe.body
    assert "budget" not in to_brown.body
    w.reply(to_brown, BROWN, "approve")
    w.new(BROWN)
    assert w.case(number).state == "in_review"  # Watanabe still has to decide himself
    w.reply(to_watanabe, WATANABE, "承認")
    w.new(WATANABE)
    wait_until(lambda: w.case(number).state == "approved", what="approved")
    assert not [d for k, d in w.events(number) if k == "decision" and "automatic" in d]


def test_a_reservation_in_an_all_of_ask_reexamines_everyone(make_world: type[World],
                                                             tmp_path: Path) -> None:
    w = all_of_world(make_world, tmp_path, RESERVE)
    w.send(SMITH, "Purchase", purchase("520,000"))
    mails = w.new(SMITH, 2)  # the change and the acknowledgement
    number = number_of(mails[0])
    changed = next(m for m in mails if "Approved with changes" in m.subject)
    assert "amount: 520,000 -> 500,000" in changed.body
    assert "500,000" in w.one(BROWN).body  # Brown decides on the modified content
    w.nothing_more(WATANABE)
    assert w.case(number).fields["amount"] == "500000"
    auto = [d for k, d in w.events(number) if k == "decision" and "automatic" in d]
    assert len(auto) == 1 and "Watanabe" in auto[0]


def test_a_revision_wait_in_an_all_of_ask(make_world: type[World], tmp_path: Path) -> None:
    """Watanabe's failure makes the whole ask wait: Brown is asked only once Watanabe's
    revised condition for this case lets his part be approved."""
    w = all_of_world(make_world, tmp_path, REVISE)
    w.send(SMITH, "Purchase", purchase("600,000"))
    number = number_of(w.one(SMITH))
    w.one(WATANABE)  # asked to revise
    assert w.case(number).state == "awaiting_revision"
    w.nothing_more(BROWN)
    w.send(WATANABE, f"conditions case {number}", revised("700000"))
    confirm(w, WATANABE)
    assert "600,000" in w.one(BROWN).body  # now Brown, and only Brown, is asked
    w.nothing_more(WATANABE)
    assert w.case(number).state == "in_review"
    auto = [d for k, d in w.events(number) if k == "decision" and "automatic" in d]
    assert len(auto) == 1 and "Watanabe" in auto[0]
