"""The registration rules of approval relations (SPEC 7): each refusal on its own, the
administrator as the neutral registrar, and the gap warning against a day-by-day model."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.directory.records import RelationRecord
from daemon.directory.registration import Gap, Party, Policy, check, gaps

TODAY = date(2027, 3, 1)
POLICY = Policy(admin="admin")


def rel(approver: str, obj: str, kind: str = "responsible", start: date = TODAY,
        end: date | None = None, unit: bool = True) -> RelationRecord:
    return RelationRecord(approver, "unit" if unit else "person", obj, kind, start, end, None)


def party(pid: str, *units: str, register: bool = True, approve: bool = True,
          active: bool = True) -> Party:
    return Party(pid, active, units, register, approve)


CLERK = party("clerk", "purchasing", "hq")  # registers for other units
BOSS = party("boss", "sales", "hq")
UNIT = True  # the object unit is active


def codes(new: RelationRecord, registrar: Party | None = CLERK, approver: Party | None = BOSS,
          object_: Party | bool | None = UNIT, others: list[RelationRecord] | None = None,
          policy: Policy = POLICY, **kw: object) -> list[str]:
    return [r.code for r in check(new, registrar, approver, object_, others or [],
                                  policy=policy, today=TODAY, **kw)]  # type: ignore[arg-type]


def test_a_clean_registration_passes() -> None:
    assert codes(rel("boss", "sales")) == []


def test_interested_parties_are_refused() -> None:
    assert codes(rel("clerk", "sales"), approver=CLERK) == ["registrar_is_approver"]
    brown = party("brown", "sales", "hq")
    assert codes(rel("boss", "brown", unit=False), registrar=brown,
                 object_=brown) == ["registrar_is_object"]
    assert "approver_is_object" in codes(rel("boss", "boss", unit=False), object_=BOSS)


def test_unit_membership_rule_and_its_variants() -> None:
    member = party("ito", "sales", "hq")
    assert codes(rel("boss", "sales"), registrar=member) == ["registrar_in_unit"]
    inside = party("sub", "sales-east", "sales", "hq")  # a section of the unit belongs to it
    assert codes(rel("boss", "sales"), registrar=inside) == ["registrar_in_unit"]
    must = Policy(admin="admin", unit_rule="member")
    assert codes(rel("boss", "sales"), registrar=member, policy=must) == []
    assert codes(rel("boss", "sales"), policy=must) == ["registrar_not_in_unit"]
    none = Policy(admin="admin", unit_rule="none")
    assert codes(rel("boss", "sales"), registrar=member, policy=none) == []


def test_qualifications() -> None:
    assert codes(rel("boss", "sales"), registrar=party("c", "x", register=False)) == [
        "registrar_not_qualified"]
    assert codes(rel("boss", "sales"), approver=party("boss", "sales", approve=False)) == [
        "approver_not_qualified"]


def test_yearly_cap_counts_new_registrations_only() -> None:
    capped = Policy(admin="admin", yearly_cap=3)
    assert codes(rel("boss", "sales"), policy=capped, made_this_year=2) == []
    assert codes(rel("boss", "sales"), policy=capped, made_this_year=3) == ["cap_reached"]
    old = rel("boss", "sales")
    assert codes(rel("boss", "sales", end=TODAY + timedelta(days=9)), policy=capped,
                 made_this_year=3, old=old, others=[old]) == []


def test_two_responsible_approvers_in_one_period() -> None:
    ito = rel("ito", "sales", end=date(2027, 3, 31))
    assert codes(rel("boss", "sales"), others=[ito]) == ["second_responsible"]
    assert codes(rel("boss", "sales", start=date(2027, 4, 1)), others=[ito]) == []
    assert codes(rel("boss", "sales"), others=[rel("boss", "sales")]) == ["same_relation"]
    # Another object, or a proxy beside the responsible approver, is no conflict.
    assert codes(rel("boss", "sales"), others=[rel("ito", "eng")]) == []


def test_proxies_need_a_responsible_registrar() -> None:
    proxy = rel("deputy", "boss", kind="proxy", unit=False)
    deputy = party("deputy", "sales")
    boss_person = party("boss", "sales")
    assert codes(proxy, approver=deputy, object_=boss_person) == ["proxy_needs_responsible"]
    clerk_resp = rel("clerk", "eng")  # the clerk approves for another unit
    assert codes(proxy, approver=deputy, object_=boss_person, registrars=[clerk_resp]) == []
    ended = rel("clerk", "eng", start=TODAY - timedelta(days=30), end=TODAY - timedelta(days=1))
    assert codes(proxy, approver=deputy, object_=boss_person, registrars=[ended]) == [
        "proxy_needs_responsible"]
    strict = Policy(admin="admin", proxy_rule="same_object")
    assert codes(proxy, approver=deputy, object_=boss_person, registrars=[clerk_resp],
                 policy=strict) == ["proxy_needs_responsible_of"]
    own = rel("clerk", "boss", unit=False)
    assert codes(proxy, approver=deputy, object_=boss_person, registrars=[own],
                 policy=strict) == []
    assert "proxy_for_unit" in codes(rel("deputy", "sales", kind="proxy"), approver=deputy,
                                     registrars=[clerk_resp])


def test_directory_facts_and_dates() -> None:
    assert codes(rel("boss", "sales"), approver=None) == ["unknown_approver"]
    assert codes(rel("boss", "sales"), approver=party("boss", active=False)) == [
        "inactive_approver"]
    assert codes(rel("boss", "sales"), object_=None) == ["unknown_object"]
    assert codes(rel("boss", "sales"), object_=False) == ["inactive_object"]
    assert codes(rel("boss", "sales"), registrar=None) == ["unknown_registrar"]
    assert codes(rel("boss", "sales", end=TODAY - timedelta(days=1))) == ["bad_dates"]
    assert codes(rel("boss", "sales", start=TODAY - timedelta(days=1))) == ["bad_dates"]


def test_the_administrator_is_the_neutral_registrar() -> None:
    admin = party("admin", "sales", "hq", register=False)
    assert codes(rel("boss", "sales"), registrar=admin) == []
    # ... but the rules about the relation itself still hold for them.
    assert codes(rel("boss", "sales"), registrar=admin, others=[rel("ito", "sales")]) == [
        "second_responsible"]


def test_gap_warnings() -> None:
    a = rel("a", "sales", start=date(2027, 1, 1), end=date(2027, 3, 31))
    b_late = rel("b", "sales", start=date(2027, 4, 5))
    assert gaps([a], [a, b_late], TODAY) == [Gap(date(2027, 4, 1), date(2027, 4, 4))]
    b = rel("b", "sales", start=date(2027, 4, 1))
    assert gaps([a], [a, b], TODAY) == []
    ended = rel("a", "sales", start=date(2027, 1, 1), end=date(2027, 3, 15))
    assert gaps([a, b], [ended, b], TODAY) == [Gap(date(2027, 3, 16), date(2027, 3, 31))]
    open_a = rel("a", "sales", start=date(2027, 1, 1))
    assert gaps([open_a], [ended], TODAY) == [Gap(date(2027, 3, 16), None)]
    first = rel("a", "sales", start=date(2027, 5, 1))  # never had one: nothing is left empty
    assert gaps([], [first], TODAY) == []
    assert gaps([a], [rel("a", "sales", start=date(2027, 1, 1),
                          end=TODAY - timedelta(days=1))], TODAY) == [
        Gap(TODAY, date(2027, 3, 31))]


DAYS = 40
spans = st.lists(st.tuples(st.integers(-5, DAYS), st.integers(0, DAYS),
                           st.booleans()), max_size=4)


def as_rels(raw: list[tuple[int, int, bool]]) -> list[RelationRecord]:
    out = []
    for start, length, open_ in raw:
        first = TODAY + timedelta(days=start)
        out.append(rel("x", "sales", start=first,
                       end=None if open_ else first + timedelta(days=length)))
    return out


def day_model(before: list[RelationRecord], after: list[RelationRecord]) -> set[int]:
    """Uncovered days (offsets from today, up to a horizon) the change should warn about."""
    horizon = 3 * DAYS

    def covered(rels: list[RelationRecord]) -> set[int]:
        return {d for d in range(horizon) for r in rels
                if r.valid_from <= TODAY + timedelta(days=d)
                and (r.valid_to is None or TODAY + timedelta(days=d) <= r.valid_to)}

    was, now = covered(before), covered(after)
    warn = was - now
    if now:
        warn |= {d for d in range(min(now), max(now)) if d not in now}
    return warn


def gap_days(found: list[Gap]) -> set[int]:
    out: set[int] = set()
    for g in found:
        last = (g.last - TODAY).days if g.last else 3 * DAYS - 1
        out |= set(range((g.first - TODAY).days, last + 1))
    return {d for d in out if d < 3 * DAYS}


@settings(max_examples=300, deadline=None)
@given(spans, spans)
def test_gaps_match_a_day_by_day_model(raw_before: list[tuple[int, int, bool]],
                                       raw_after: list[tuple[int, int, bool]]) -> None:
    before, after = as_rels(raw_before), as_rels(raw_after)
    assert gap_days(gaps(before, after, TODAY)) == day_model(before, after)
