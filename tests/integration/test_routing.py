"""Resolvers and judgement, table-driven against the sample organisation and rules."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.app import App
from daemon.directory.lookup import member
from daemon.routing.engine import Facts, Pos, walk
from daemon.routing.resolvers import RouteContext, resolve
from daemon.routing.templates import Step
from tests.support import free_port, make_config, ringi, write_config

ON = datetime.date(2026, 11, 2)


@pytest.fixture
def app(tmp_path: Path, db_url: str) -> Iterator[App]:
    a = App(make_config(tmp_path, db_url, None, free_port()))
    a.prepare()
    yield a
    a.stop()


def run(app: App, step: Step, requester: str, last: str | None = None, sub: int = 0,
        case_type: str = "travel", on: datetime.date = ON) -> tuple[list[str], Any]:
    with app.store.transaction() as s:
        req = member(s, requester)
        actor = member(s, last or requester)
        assert req is not None and actor is not None
        res = resolve(s, step, RouteContext(case_type, req, actor, on, sub))
        return [m.id for m in res.approvers], res


RANK = Step(name="t", resolver="rank-above")


@pytest.mark.parametrize(
    ("step", "requester", "last", "expected", "flag", "words"),
    [
        (RANK, "tanaka", None, ["sato"], "", "lowest rank above Staff in Engineering"),
        # Section Manager is vacant in Engineering: stepped over to the Department Manager.
        (RANK, "tanaka", "sato", ["suzuki"], "", "stepped over: Section Manager"),
        (Step(name="t", resolver="rank-above", max_rank=30), "tanaka", "sato", [], "exhausted",
         "(Section Manager vacant)"),
        (Step(name="t", resolver="rank-above", min_rank=31), "tanaka", "tanaka", ["suzuki"],
         "", "Department Manager"),
        (RANK, "smith", "brown", ["watanabe"], "", "Sales"),
        (RANK, "tanaka", "suzuki", [], "exhausted", "nobody in Engineering ranks above"),
        # Switching classification: from a Chief (20) of Engineering into Accounting.
        (Step(name="t", resolver="rank-above", unit="accounting"), "tanaka", "sato", ["ito"],
         "", "Accounting"),
    ],
)
def test_rank_above(app: App, step: Step, requester: str, last: str | None,
                    expected: list[str], flag: str, words: str) -> None:
    ids, res = run(app, step, requester, last)
    assert ids == expected
    assert (res.exhausted, res.failed) == (flag == "exhausted", flag == "failed")
    assert words in res.explanation


@pytest.mark.parametrize(
    ("step", "requester", "expected", "failed", "words"),
    [
        (Step(name="t", resolver="role", role="head"), "tanaka", ["suzuki"], False,
         "head of Engineering"),
        # Design has no head: climb to Engineering.
        (Step(name="t", resolver="role", role="head"), "nakamura", ["suzuki"], False,
         "climbed from Design → Engineering"),
        (Step(name="t", resolver="role", role="head", climb=False), "nakamura", [], True,
         "nobody holds head in Design"),
        # Climbing several levels and failing at the root.
        (Step(name="t", resolver="role", role="auditor"), "nakamura", [], True,
         "Design → Engineering → Head Office (reached the top"),
        (Step(name="t", resolver="role", role="head", unit="accounting"), "tanaka", ["ito"],
         False, "head of Accounting"),
        # The requester never approves their own case: the head of Sales climbs to HQ.
        (Step(name="t", resolver="role", role="head"), "watanabe", ["yamamoto"], False,
         "climbed from Sales → Head Office"),
    ],
)
def test_role(app: App, step: Step, requester: str, expected: list[str], failed: bool,
              words: str) -> None:
    ids, res = run(app, step, requester)
    assert ids == expected and res.failed is failed
    assert words in res.explanation


@pytest.mark.parametrize(
    ("requester", "on", "expected", "words"),
    [
        ("smith", datetime.date(2026, 1, 1), ["watanabe"], "registered approver for unit Sales"),
        ("smith", datetime.date(2027, 12, 31), ["watanabe"], "on 2027-12-31"),
        ("smith", datetime.date(2028, 1, 1), [], "no approval relation"),
        ("smith", datetime.date(2025, 12, 31), [], "no approval relation"),
        ("tanaka", ON, [], "no approval relation"),
    ],
)
def test_relation(app: App, requester: str, on: datetime.date, expected: list[str],
                  words: str) -> None:
    ids, res = run(app, Step(name="t", resolver="relation"), requester, on=on)
    assert ids == expected and res.failed is (not expected)
    assert words in res.explanation


GROUPS = {"travel": {"unit": "accounting", "roles": ["accounting_staff", "accounting_manager"]},
          "purchase": {"unit": "procurement", "roles": ["buyer", "nobody_role"]}}


@pytest.mark.parametrize(
    ("case_type", "sub", "expected", "flag", "words"),
    [
        ("travel", 0, ["kato"], "", "accounting_staff of Accounting (1 of 2)"),
        ("travel", 1, ["ito"], "", "accounting_manager of Accounting (2 of 2)"),
        ("travel", 2, [], "exhausted", "every role of accounting has approved"),
        ("purchase", 1, [], "failed", "nobody holds nobody_role in Procurement"),
        ("design_release", 0, [], "exhausted", "no business group for case type"),
    ],
)
def test_business_group(app: App, case_type: str, sub: int, expected: list[str], flag: str,
                        words: str) -> None:
    step = Step(name="t", resolver="business", groups=GROUPS)
    ids, res = run(app, step, "tanaka", sub=sub, case_type=case_type)
    assert ids == expected
    assert (res.exhausted, res.failed) == (flag == "exhausted", flag == "failed")
    assert words in res.explanation


@pytest.mark.parametrize(
    ("people", "mode", "expected", "res_mode", "failed"),
    [
        (("yamamoto",), "any", ["yamamoto"], "single", False),
        (("yamamoto", "admin"), "any", ["yamamoto", "admin"], "any", False),
        (("yamamoto", "admin"), "all", ["yamamoto", "admin"], "all", False),
        (("yamamoto", "ghost"), "all", [], "single", True),
    ],
)
def test_fixed(app: App, people: tuple[str, ...], mode: str, expected: list[str],
               res_mode: str, failed: bool) -> None:
    ids, res = run(app, Step(name="t", resolver="fixed", people=people, mode=mode), "smith")
    assert ids == expected and res.mode == res_mode and res.failed is failed


def first_asks(app: App, case_type: str, requester: str, fields: dict[str, Any]) -> list[str]:
    """Walk the real sample template from the start, approving each ask in turn."""
    from daemon.routing.engine import after_approval

    kinds = {f.name: str(f.kind) for f in app.types.get(case_type).fields}  # type: ignore[union-attr]
    _, template = app.registry.current(case_type)
    asked: list[str] = []
    with app.store.transaction() as s:
        req = member(s, requester)
        assert req is not None
        pos, inside, last = Pos(), False, req
        for _ in range(12):
            nxt = walk(s, template, pos, inside, Facts(fields, kinds, {}), case_type, req,
                       last, ON)
            if nxt.done:
                return asked
            assert nxt.resolution is not None and nxt.pos is not None
            who = nxt.resolution.approvers[0]
            asked.append(who.id)
            pos, inside = after_approval(template, nxt.pos)
            last = who
    raise AssertionError("route did not end")


TRIP = {"destination": "Osaka", "purpose": "x", "departure_date": "2026-11-10",
        "return_date": "2026-11-11"}


@pytest.mark.parametrize(
    ("amount", "receipts", "expected"),
    [
        ("49999", None, ["sato"]),  # below the threshold: Manager and above skipped
        ("50000", None, ["sato", "suzuki"]),  # at the threshold: included
        ("50001", None, ["sato", "suzuki"]),
        ("49999", 0, ["sato"]),  # zero receipts: the accounting phase is skipped
        ("49999", 2, ["sato", "kato", "ito"]),  # receipts: accounting staff, then manager
        ("50000", 3, ["sato", "suzuki", "kato", "ito"]),
    ],
)
def test_travel_judgement(app: App, amount: str, receipts: int | None,
                          expected: list[str]) -> None:
    fields = {**TRIP, "amount": amount}
    if receipts is not None:
        fields["receipts"] = receipts
    assert first_asks(app, "travel", "tanaka", fields) == expected


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("1000000", ["takahashi", "brown", "watanabe", "clark", "mori"]),
        ("1000001", ["takahashi", "brown", "watanabe", "clark", "mori", "yamamoto"]),
    ],
)
def test_purchase_passes_procurement(app: App, amount: str, expected: list[str]) -> None:
    fields = {"item": "x", "supplier": "y", "quantity": 1, "amount": amount,
              "category": "equipment"}
    assert first_asks(app, "purchase", "smith", fields) == expected


def test_design_release_climbs_to_parent_head(app: App) -> None:
    fields = {"document_number": "D-1", "revision": "A", "summary": "s"}
    assert first_asks(app, "design_release", "nakamura", fields) == ["suzuki"]
    assert first_asks(app, "design_release", "smith", fields) == ["watanabe"]


def test_rules_check_cli(tmp_path: Path, db_url: str) -> None:
    import shutil

    from tests.support import ROOT

    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    cfg = make_config(tmp_path, db_url, None, free_port(), paths={"rules": str(rules)})
    cfg_file = write_config(cfg, tmp_path)
    ok = ringi(cfg_file, "rules", "check")
    assert ok.exit_code == 0, ok.output
    assert "travel           workflow travel" in ok.output and "line → accounting" in ok.output
    (rules / "workflows" / "broken.toml").write_text('''
name = "broken"
case_types = ["nosuchtype"]
[[phases]]
name = "p"
when = "case.amount >"
  [[phases.steps]]
  resolver = "teleport"
  [[phases.steps]]
  resolver = "role"
''')
    (rules / "workflows" / "typo.toml").write_text('''
name = "typo"
case_types = ["design_release"]
[[phases]]
name = "p"
  [[phases.steps]]
  resolver = "fixed"
  people = ["yamamoto"]
  when = "case.amout > 5"
''')
    (rules / "workflows" / "design_release.toml").unlink()
    bad = ringi(cfg_file, "rules", "check")
    assert bad.exit_code == 1  # a refused file is a failed check; the daemon still starts
    out = bad.output
    assert "broken.toml: case_types: unknown case type 'nosuchtype'" in out
    assert "broken.toml: phase p: condition does not compile" in out
    assert "resolver must be one of rank-above, role, relation, business, fixed" in out
    assert "a role step needs role" in out
    assert "typo.toml: phase p, step 1: case.amout is not a field" in out
    assert "Traceback" not in out
