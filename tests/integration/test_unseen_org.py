"""Directory changes on an organisation the other tests do not use (company > division >
department > section, other ranks and roles, a unit with no head, mode "all" steps):
departures, posts changing hands, vacancies filled later, all-of steps and escalations
under change, a full reorganisation through the CLI with an effective time on a shifted
clock, and send-backs. Real mail in and out."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from daemon.app import App
from daemon.clock import FrozenClock
from daemon.directory.importer import import_directory_file
from daemon.store.models import WorkItem
from daemon.workqueue.queue import Queues, State
from tests.integration.orgworld import case_steps, decide, event_kinds, org_file
from tests.integration.test_outcomes import World, number_of, start_world
from tests.support import (
    ROOT,
    Captured,
    CapturingRelay,
    free_port,
    make_config,
    ringi,
    wait_until,
    write_config,
)

HERE = Path(__file__).resolve().parent.parent / "data" / "kaisha"
ORG = (HERE / "org.toml").read_text()
D = "@kaisha.example"
YOSHIDA, LEE, ABE, KIMURA = (f"{x}{D}" for x in ("yoshida", "lee", "abe", "kimura"))
PATEL, OGAWA, FUJII, HAYASHI = (f"{x}{D}" for x in ("patel", "ogawa", "fujii", "hayashi"))
SYSADM, GARCIA, MATSUDA = (f"{x}{D}" for x in ("sysadm", "garcia", "matsuda"))
EVERYONE = (YOSHIDA, LEE, ABE, KIMURA, PATEL, OGAWA, FUJII, HAYASHI, SYSADM, GARCIA, MATSUDA)

RELEASE = "Type: design_release\nDocument number: QA-7\nRevision: B\nSummary: inspection jig\n"
PURCHASE = ("Type: purchase\nItem: Gauge\nSupplier: Mitutoyo\nQuantity: 2\nAmount: 80000\n"
            "Category: equipment\n")


def travel(amount: str) -> str:
    return ("Type: travel\nDestination: Nagoya\nPurpose: Supplier audit\n"
            f"Departure date: 2026-11-10\nReturn date: 2026-11-11\nAmount: {amount}\n")


def post(pid: str) -> str:
    """The `id = ...` line of a person: where edits of the org anchor."""
    return f'id = "{pid}"\n'


def leaves(text: str, pid: str) -> str:
    return text.replace(post(pid), post(pid) + "active = false\n", 1)


def role_to(text: str, unit: str, role: str, old: str, new: str | None) -> str:
    block = f'[[roles]]\nunit = "{unit}"\nrole = "{role}"\nperson = "{old}"\n'
    assert block in text
    return text.replace(block, "" if new is None else block.replace(old, new))


def rules_dir(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    for f in (rules / "conditions").glob("*.toml"):
        f.unlink()  # names people of the sample organisation
    for f in (HERE / "workflows").glob("*.toml"):
        shutil.copy(f, rules / "workflows" / f.name)
    return rules


def sections(tmp_path: Path) -> dict[str, object]:
    org = tmp_path / "kaisha.toml"
    org.write_text(ORG)
    return {"directory": {"file": str(org)}, "workflow": {"admin": "sysadm"}}


@contextmanager
def kworld(tmp_path: Path, db_url: str, relay: CapturingRelay) -> Iterator[World]:
    w = start_world(tmp_path, db_url, relay, rules=rules_dir(tmp_path), **sections(tmp_path))
    try:
        yield w
    finally:
        w.app.stop()


def reorganise(w: World, tmp_path: Path, text: str, name: str) -> None:
    diff = import_directory_file(w.app.store, org_file(tmp_path, text, name), w.clock.now(),
                                 after=w.app.reroute_after_import)
    assert diff is not None and not diff.empty


def settle(w: World) -> None:
    """Every mail taken in has been acted on and every answer sent: the daemon's own
    runner threads may hold an item, so wait until no inbound, reorg or outbound item is
    queued or running."""

    def idle() -> bool:
        w.app.inbound_runner.drain()
        w.rerouted()
        w.app.outbox_runner.drain()
        with w.app.store.transaction() as s:
            return not s.scalar(select(func.count()).select_from(WorkItem).where(
                WorkItem.state.in_((State.QUEUED, State.RUNNING)),
                WorkItem.queue.in_((Queues.INBOUND, Queues.REORG, Queues.OUTBOUND))))

    wait_until(idle, 30, "the queues to settle")


def fresh(w: World, who: str) -> list[Captured]:
    """Every mail to `who` not looked at yet (after the runners are drained)."""
    settle(w)
    mails = w.relay.to(who)
    start = w.seen.get(who, 0)
    w.seen[who] = len(mails)
    return mails[start:]


def subjects(w: World, who: str) -> list[str]:
    return [m.subject for m in fresh(w, who)]


def steps(w: World, number: str) -> list[tuple[str, str, str]]:
    return [(st.approver_id, st.kind, st.state) for st in case_steps(w, number)]


def catch_up(w: World, *who: str) -> None:
    settle(w)
    for x in who:
        w.seen[x] = len(w.relay.to(x))


# ---------------------------------------------------------------- scenario 1


def test_s1_last_approver_leaves_mid_step_holds(tmp_path: Path, db_url: str,
                                                relay: CapturingRelay) -> None:
    """Lee and Abe approved in step up-to-kacho; Kimura, pending, leaves. Nobody in qa
    ranks above Abe within the step: held, never approved by her absence."""
    with kworld(tmp_path, db_url, relay) as w:
        w.send(YOSHIDA, "名古屋出張", travel("20,000"))
        number = number_of(w.one(YOSHIDA))
        decide(w, w.one(LEE), LEE, "APPROVE")
        decide(w, w.one(ABE), ABE, "承認")
        to_kimura = w.one(KIMURA)
        catch_up(w, YOSHIDA)
        reorganise(w, tmp_path, leaves(ORG, "kimura"), "o1.toml")
        held = fresh(w, YOSHIDA)
        assert held and "停止中" in held[-1].subject, [m.subject for m in held]
        assert "理由: 上位に承認者がいません" in held[-1].body \
            or "理由: 承認者が組織情報にいません" in held[-1].body
        alerts = fresh(w, SYSADM)
        assert any(number in m.body for m in alerts), [m.subject for m in alerts]
        assert w.case(number).state == "held"
        assert "approved" not in event_kinds(w, number)
        w.reply(to_kimura, KIMURA, "承認")  # she has left: changes nothing
        settle(w)
        assert w.case(number).state == "held"
        assert fresh(w, LEE) == [] and fresh(w, ABE) == [] and fresh(w, OGAWA) == []


# ---------------------------------------------------------------- scenario 2


def test_s2_role_handed_over_moves_the_step(tmp_path: Path, db_url: str,
                                            relay: CapturingRelay) -> None:
    with kworld(tmp_path, db_url, relay) as w:
        w.send(YOSHIDA, "出図", RELEASE)
        number = number_of(w.one(YOSHIDA))
        old = w.one(OGAWA)  # qa has no head: climbed to plant
        w.send(YOSHIDA, "出張", travel("10,000"))
        other = number_of(w.one(YOSHIDA))
        w.one(LEE)
        w.send(GARCIA, "Trip", travel("10,000"))
        w.one(GARCIA)
        w.one(MATSUDA)
        reorganise(w, tmp_path, role_to(ORG, "plant", "head", "ogawa", "patel"), "o2.toml")
        gone = fresh(w, OGAWA)
        assert len(gone) == 1 and "ご判断は不要" in gone[0].subject, [m.subject for m in gone]
        new = fresh(w, PATEL)
        assert len(new) == 1 and number_of(new[0]) == number, [m.subject for m in new]
        assert "Ogawa" in new[0].body, new[0].body  # names whom she replaces
        w.reply(old, OGAWA, "承認")
        refused = fresh(w, OGAWA)
        assert refused and "受付できません" in refused[0].subject
        assert fresh(w, LEE) == [] and fresh(w, MATSUDA) == [] and fresh(w, GARCIA) == []
        assert w.case(other).state == "in_review"
        decide(w, new[0], PATEL, "APPROVE")
        assert number_of(w.one(KIMURA)) == number and number_of(w.one(MATSUDA)) == number


def purchase_at_fujii(w: World) -> tuple[str, Captured]:
    """Yoshida's purchase, approved by Lee and Abe: its number and the ask to Fujii, the
    responsible approver for qa."""
    w.send(YOSHIDA, "ゲージ購入", PURCHASE)
    number = number_of(w.one(YOSHIDA))
    decide(w, w.one(LEE), LEE, "APPROVE")
    decide(w, w.one(ABE), ABE, "承認")
    return number, w.one(FUJII)


def test_s2b_relation_replaced_moves_the_step(tmp_path: Path, db_url: str,
                                              relay: CapturingRelay) -> None:
    with kworld(tmp_path, db_url, relay) as w:
        number, old = purchase_at_fujii(w)  # the responsible approver for qa
        text = ORG.replace('approver = "fujii"\nunit = "qa"', 'approver = "hayashi"\nunit = "qa"')
        reorganise(w, tmp_path, text, "o2b.toml")
        assert [("ご判断は不要" in m.subject) for m in fresh(w, FUJII)] == [True]
        new = fresh(w, HAYASHI)
        assert len(new) == 1 and "藤井" in new[0].body, [m.subject for m in new]
        w.reply(old, FUJII, "承認")
        settle(w)
        ans = fresh(w, FUJII)
        print("2b fujii:", [m.subject for m in ans], w.events(number)[-4:])
        assert ans and "受付できません" in ans[0].subject
        assert fresh(w, LEE) == [] and fresh(w, ABE) == []
        decide(w, new[0], HAYASHI, "承認")
        assert number_of(w.one(MATSUDA)) == number


# ---------------------------------------------------------------- scenario 3


def test_s3_vacant_controller_holds_then_resumes(tmp_path: Path, db_url: str,
                                                 relay: CapturingRelay) -> None:
    with kworld(tmp_path, db_url, relay) as w:
        number, to_fujii = purchase_at_fujii(w)
        decide(w, to_fujii, FUJII, "承認")
        w.one(MATSUDA)
        catch_up(w, YOSHIDA, SYSADM)
        vacant = role_to(ORG, "fin", "controller", "matsuda", None)
        reorganise(w, tmp_path, vacant, "o3.toml")
        assert [("ご判断は不要" in m.subject) for m in fresh(w, MATSUDA)] == [True]
        held = fresh(w, YOSHIDA)
        assert len(held) == 1 and "停止中" in held[0].subject \
            and "理由: この段階の役職が空席です" in held[0].body
        assert any(number in m.body for m in fresh(w, SYSADM))
        assert w.case(number).state == "held"
        filled = vacant + '\n[[roles]]\nunit = "fin"\nrole = "controller"\nperson = "garcia"\n'
        reorganise(w, tmp_path, filled, "o3b.toml")
        asks = fresh(w, GARCIA)
        assert len(asks) == 1 and number_of(asks[0]) == number, [m.subject for m in asks]
        assert "再開しました" in fresh(w, YOSHIDA)[0].subject
        assert w.case(number).state == "in_review"
        assert fresh(w, LEE) == [] and fresh(w, FUJII) == []  # not asked again
        decide(w, asks[0], GARCIA, "APPROVE")
        wait_until(lambda: w.case(number).state == "approved", what="approved")


# ---------------------------------------------------------------- scenario 4


def board_asked(w: World) -> tuple[str, Captured, Captured]:
    w.send(YOSHIDA, "出図", RELEASE)
    number = number_of(w.one(YOSHIDA))
    decide(w, w.one(OGAWA), OGAWA, "承認")
    return number, w.one(KIMURA), w.one(MATSUDA)


def test_s4a_all_of_one_approved_other_leaves(tmp_path: Path, db_url: str,
                                              relay: CapturingRelay) -> None:
    with kworld(tmp_path, db_url, relay) as w:
        number, to_k, to_m = board_asked(w)
        decide(w, to_k, KIMURA, "承認")
        catch_up(w, YOSHIDA, SYSADM)
        reorganise(w, tmp_path, leaves(ORG, "matsuda"), "o4.toml")
        settle(w)
        assert w.case(number).state == "held", (w.case(number).state, steps(w, number))
        assert fresh(w, HAYASHI) == []  # never on to the president without Matsuda
        assert any("停止中" in m.subject for m in fresh(w, YOSHIDA))
        w.reply(to_m, MATSUDA, "承認")  # she has left
        settle(w)
        print("4a: matsuda (gone) answered:", subjects(w, MATSUDA))
        assert w.case(number).state == "held" and fresh(w, HAYASHI) == []
        # She comes back: the hold resumes, she is asked, Kimura's approval stands.
        reorganise(w, tmp_path, ORG, "o4b.toml")
        again = fresh(w, MATSUDA)
        assert len(again) == 1 and number_of(again[0]) == number, [m.subject for m in again]
        km = fresh(w, KIMURA)
        decide(w, again[0], MATSUDA, "承認")
        hy = fresh(w, HAYASHI)
        print("4a: after resume kimura got", [(m.subject, m.body[:300]) for m in km],
              "hayashi after matsuda's approval", [m.subject for m in hy], steps(w, number))
        assert km == [], ("Kimura asked again though her approval of the step stands",
                          [m.subject for m in km], steps(w, number), [m.subject for m in hy])


def test_s4b_all_of_other_leaves_while_both_pending(tmp_path: Path, db_url: str,
                                                    relay: CapturingRelay) -> None:
    with kworld(tmp_path, db_url, relay) as w:
        number, to_k, _ = board_asked(w)
        reorganise(w, tmp_path, leaves(ORG, "matsuda"), "o4.toml")
        settle(w)
        state_after_import = w.case(number).state
        k_mails = subjects(w, KIMURA)
        w.reply(to_k, KIMURA, "承認")  # the remaining ask
        settle(w)
        k_reply = subjects(w, KIMURA)
        st = w.case(number).state
        assert st != "approved" and fresh(w, HAYASHI) == [], (st, steps(w, number))
        assert state_after_import == "held", (state_after_import, k_mails, k_reply,
                                              steps(w, number))
        print("4b: kimura mails after import:", k_mails, "after reply:", k_reply,
              "steps:", steps(w, number))


def escalate(w: World, first: datetime) -> None:
    """Reminder then escalation of an ask made at `first` (a Friday)."""
    w.clock.set(first + timedelta(days=4))
    w.app.timers.run_once()
    w.clock.set(first + timedelta(days=7))
    w.app.timers.run_once()


FRIDAY = datetime(2026, 11, 6, 9, 0, tzinfo=UTC)


def test_s4c_escalated_proxy_leaves_original_ask_stays(tmp_path: Path, db_url: str,
                                                       relay: CapturingRelay) -> None:
    with kworld(tmp_path, db_url, relay) as w:
        w.clock.set(FRIDAY)
        w.send(YOSHIDA, "出図", RELEASE)
        number = number_of(w.one(YOSHIDA))
        to_ogawa = w.one(OGAWA)
        escalate(w, FRIDAY)
        esc = [m for m in fresh(w, PATEL) if number in m.subject]
        assert esc, "no escalation to the proxy"
        catch_up(w, OGAWA)
        reorganise(w, tmp_path, leaves(ORG, "patel"), "o4c.toml")
        settle(w)
        assert w.case(number).state == "in_review", steps(w, number)
        mails_ogawa = subjects(w, OGAWA)
        assert mails_ogawa == [], mails_ogawa  # unchanged approver hears nothing
        w.reply(esc[-1], PATEL, "APPROVE")  # she has left
        settle(w)
        assert fresh(w, KIMURA) == [], "approved by a departed proxy"
        decide(w, to_ogawa, OGAWA, "承認")  # the original ask still works
        assert number_of(w.one(KIMURA)) == number
        print("4c: ogawa got after import", mails_ogawa, "steps:", steps(w, number))


def test_s4d_original_approver_leaves_escalation_pending(tmp_path: Path, db_url: str,
                                                         relay: CapturingRelay) -> None:
    """Lee's travel ask escalated to his proxy Garcia (Finance); then Lee leaves. The step
    moves to Abe (next above Yoshida). Garcia stood in for Lee: her ask should not decide
    Abe's post; the case never skips Abe/Kimura."""
    with kworld(tmp_path, db_url, relay) as w:
        w.clock.set(FRIDAY)
        w.send(YOSHIDA, "出張", travel("20,000"))
        number = number_of(w.one(YOSHIDA))
        to_lee = w.one(LEE)
        escalate(w, FRIDAY)
        esc = [m for m in fresh(w, GARCIA) if number in m.subject]
        assert esc, "no escalation to Lee's proxy"
        catch_up(w, LEE)
        reorganise(w, tmp_path, leaves(ORG, "lee"), "o4d.toml")
        to_abe = fresh(w, ABE)
        garcia_after = subjects(w, GARCIA)
        assert garcia_after, "Garcia's escalated ask was withdrawn without telling her"
        print("4d: abe got", [m.subject for m in to_abe], "garcia got", garcia_after,
              "steps", steps(w, number))
        assert len(to_abe) == 1 and ("Lee" in to_abe[0].body or "リー" in to_abe[0].body)
        w.reply(to_lee, LEE, "APPROVE")
        settle(w)
        w.reply(esc[-1], GARCIA, "APPROVE")
        settle(w)
        g = subjects(w, GARCIA)
        st = steps(w, number)
        print("4d: garcia reply answer", g, "steps", st)
        assert fresh(w, KIMURA) == [], ("Garcia's stale escalation decided Abe's post", g, st)
        decide(w, to_abe[0], ABE, "承認")
        assert number_of(w.one(KIMURA)) == number


def test_a5_proxy_decides_escalation_route_continues_from_lee(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    with kworld(tmp_path, db_url, relay) as w:
        w.clock.set(FRIDAY)
        w.send(YOSHIDA, "出張", travel("20,000"))
        number = number_of(w.one(YOSHIDA))
        w.one(LEE)
        escalate(w, FRIDAY)
        esc = [m for m in fresh(w, GARCIA) if number in m.subject]
        decide(w, esc[-1], GARCIA, "APPROVE")
        assert number_of(w.one(ABE)) == number  # qa, above Lee; not Finance's Matsuda
        assert fresh(w, MATSUDA) == []


# ---------------------------------------------------------------- scenario 6


def test_s6_send_back_chain_across_steps(tmp_path: Path, db_url: str,
                                         relay: CapturingRelay) -> None:
    with kworld(tmp_path, db_url, relay) as w:
        w.send(YOSHIDA, "出張", travel("60,000"))
        number = number_of(w.one(YOSHIDA))
        decide(w, w.one(LEE), LEE, "APPROVE")
        decide(w, w.one(ABE), ABE, "承認")
        decide(w, w.one(KIMURA), KIMURA, "承認")
        decide(w, w.one(OGAWA), OGAWA, "却下\n目的が不明")
        back_k = fresh(w, KIMURA)
        assert len(back_k) == 1 and "目的が不明" in back_k[0].body
        decide(w, back_k[0], KIMURA, "却下\n再確認を")
        assert fresh(w, KIMURA) == [], "asked again by her own rejection"
        back_a = fresh(w, ABE)
        assert len(back_a) == 1 and "再確認を" in back_a[0].body, [m.subject for m in back_a]
        decide(w, back_a[0], ABE, "却下\n不要")
        back_l = fresh(w, LEE)
        assert len(back_l) == 1 and number_of(back_l[0]) == number
        assert fresh(w, ABE) == [] and fresh(w, KIMURA) == []
        decide(w, back_l[0], LEE, "REJECT\nCancelled")
        wait_until(lambda: w.case(number).state == "rejected", what="rejected")
        assert any("却下" in m.subject for m in fresh(w, YOSHIDA))
        assert fresh(w, LEE) == [] and fresh(w, ABE) == [] and fresh(w, KIMURA) == []
        print("6: steps", steps(w, number))


def test_s6b_all_of_board_rejects_after_resend(tmp_path: Path, db_url: str,
                                               relay: CapturingRelay) -> None:
    """The president rejects: the board (all-of) is asked again whole. Kimura approves again,
    Matsuda rejects: back to Ogawa; Kimura's approval undone and she is told."""
    with kworld(tmp_path, db_url, relay) as w:
        number, to_k, to_m = board_asked(w)
        decide(w, to_k, KIMURA, "承認")
        decide(w, to_m, MATSUDA, "承認")
        decide(w, w.one(HAYASHI), HAYASHI, "却下\n版数")
        ak, am = fresh(w, KIMURA), fresh(w, MATSUDA)
        assert len(ak) == 1 and len(am) == 1
        decide(w, ak[0], KIMURA, "承認")
        decide(w, am[0], MATSUDA, "却下\n予算")
        told = fresh(w, KIMURA)
        assert len(told) == 1 and "松田" in told[0].body, [m.subject for m in told]
        back = fresh(w, OGAWA)
        assert len(back) == 1 and number_of(back[0]) == number
        assert fresh(w, MATSUDA) == []


# ---------------------------------------------------------------- scenario 5

NEW_ORG = leaves(role_to(ORG, "plant", "head", "ogawa", "patel"), "kimura")


@contextmanager
def real_clock_world(tmp_path: Path, db_url: str, relay: CapturingRelay) -> Iterator[World]:
    clock = FrozenClock(datetime.now(UTC))
    cfg = make_config(tmp_path, db_url, relay.port, free_port(), **sections(tmp_path))
    cfg.paths.rules = rules_dir(tmp_path)
    app = App(cfg, clock=clock)
    app.prepare()
    app.start()
    try:
        yield World(app, relay, clock)
    finally:
        app.stop()


def three(w: World) -> dict[str, object]:
    w.send(YOSHIDA, "出図", RELEASE)
    a = number_of(w.one(YOSHIDA))
    to_ogawa = w.one(OGAWA)
    w.send(YOSHIDA, "出張", travel("20,000"))
    b = number_of(w.one(YOSHIDA))
    decide(w, w.one(LEE), LEE, "APPROVE")
    decide(w, w.one(ABE), ABE, "承認")
    to_kimura = w.one(KIMURA)
    catch_up(w, YOSHIDA)
    w.send(YOSHIDA, "購入", PURCHASE)
    c = number_of(w.one(YOSHIDA))
    to_lee = w.one(LEE)
    catch_up(w, *EVERYONE)
    return {"a": a, "b": b, "c": c, "ogawa": to_ogawa, "kimura": to_kimura, "lee": to_lee}


def test_s5_reorg_by_cli(tmp_path: Path, db_url: str, relay: CapturingRelay,
                         monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with real_clock_world(tmp_path, db_url, relay) as w:
        f = three(w)
        cfg = write_config(w.app.cfg, tmp_path)
        (tmp_path / "plan.toml").write_text(NEW_ORG)
        monkeypatch.chdir(tmp_path)
        eff = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
        r = ringi(cfg, "reorg", "plan", "plan.toml", "--effective", eff)
        print(r.output)
        assert r.exit_code in (0, 1), r.output
        assert "planned: reorganisation 1" in r.output
        v = ringi(cfg, "reorg", "verify")
        print(v.output)
        assert v.exit_code == 1
        assert "moves to patel from ogawa" in v.output
        assert "fails: no approver left above" in v.output or "fails: approver gone" in v.output
        js = json.loads(ringi(cfg, "reorg", "verify", "--json").output)
        assert js["counts"] == {"moves": 1, "unchanged": 1, "fails": 1}, js["counts"]
        shifted = ringi(cfg, "--clock-offset", "31d", "reorg", "status")
        print(shifted.output)
        assert ringi(cfg, "reorg", "begin").exit_code == 0
        assert "IN PROGRESS" in ringi(cfg, "status").output
        w.clock.set(datetime.now(UTC) + timedelta(minutes=1))
        # a request during the change
        w.send(GARCIA, "Trip", travel("10,000"))
        ack = fresh(w, GARCIA)
        assert len(ack) == 1 and "being reorganised" in ack[0].body, ack[0].body
        d = number_of(ack[0])
        assert w.case(d).state == "received" and fresh(w, MATSUDA) == []
        # replies during the change: Lee (stays approver), Ogawa (post moves), Kimura (leaves)
        w.reply(f["lee"], LEE, "APPROVE")
        kept_lee = fresh(w, LEE)
        assert len(kept_lee) == 1, [m.subject for m in kept_lee]
        w.reply(f["ogawa"], OGAWA, "承認")
        assert "保管" in fresh(w, OGAWA)[0].subject
        w.reply(f["kimura"], KIMURA, "承認")
        kept_kimura = subjects(w, KIMURA)
        assert fresh(w, ABE) == [] and w.case(f["c"]).state == "in_review"
        refused = ringi(cfg, "reorg", "commit")
        assert refused.exit_code == 1 and "--hold-failing" in refused.output, refused.output
        settle(w)
        assert fresh(w, PATEL) == []
        done = ringi(cfg, "reorg", "commit", "--hold-failing")
        assert done.exit_code == 0, done.output
        w.clock.advance(timedelta(minutes=10))
        settle(w)
        to_patel = fresh(w, PATEL)
        assert len(to_patel) == 1 and number_of(to_patel[0]) == f["a"]
        og = [m.subject for m in fresh(w, OGAWA)]
        assert len(og) == 2 and any("受付できません" in s or "ご判断" in s for s in og), og
        after_kimura = subjects(w, KIMURA)
        assert w.case(f["b"]).state == "held"
        assert "approved" not in event_kinds(w, f["b"])
        ab = fresh(w, ABE)
        assert any(number_of(m) == f["c"] for m in ab), [m.subject for m in ab]  # Lee's reply
        assert any(number_of(m) == d for m in fresh(w, MATSUDA))  # D routed now
        print("5: kimura kept", kept_kimura, "after commit", after_kimura)
        shown = ringi(cfg, "case", "show", f["b"])
        assert "state:     held" in shown.output, shown.output
        back = ringi(cfg, "reorg", "rollback")
        print(back.output)
        assert back.exit_code == 0
        w.clock.advance(timedelta(minutes=10))
        settle(w)
        pm = fresh(w, PATEL)
        assert any("no longer" in m.subject.lower() or "not needed" in m.subject.lower()
                   for m in pm), [m.subject for m in pm]
        assert any(number_of(m) == f["a"] for m in fresh(w, OGAWA))
        assert any(number_of(m) == f["b"] for m in fresh(w, KIMURA))
        catch_up(w, KIMURA)
        decide(w, f["ogawa"], OGAWA, "承認")
        assert any(number_of(m) == f["a"] for m in fresh(w, KIMURA))
        assert w.case(f["b"]).state == "in_review"
        st = ringi(cfg, "reorg", "status")
        assert "rolled_back" in st.output, st.output


def test_s5b_effective_time_on_a_shifted_clock(tmp_path: Path, db_url: str,
                                               relay: CapturingRelay, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with real_clock_world(tmp_path, db_url, relay) as w:
        f = three(w)
        cfg = write_config(w.app.cfg, tmp_path)
        (tmp_path / "plan.toml").write_text(NEW_ORG)
        monkeypatch.chdir(tmp_path)
        eff = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
        r = ringi(cfg, "reorg", "plan", "plan.toml", "--effective", eff)
        assert "planned: reorganisation 1" in r.output, r.output
        s = ringi(cfg, "--clock-offset", "2d", "status")
        assert "SHIFTED" in s.output, s.output
        w.app.timers.run_once()
        assert fresh(w, PATEL) == []  # not yet
        w.clock.set(datetime.now(UTC) + timedelta(days=2))
        w.app.timers.run_once()
        settle(w)
        assert any(number_of(m) == f["a"] for m in fresh(w, PATEL))
        assert any("committed" in m.subject for m in fresh(w, SYSADM))
        assert w.case(f["b"]).state == "held"
        back = ringi(cfg, "--clock-offset", "2d", "reorg", "rollback")
        assert back.exit_code == 0, back.output
        w.clock.advance(timedelta(minutes=10))
        settle(w)
        assert w.case(f["b"]).state == "in_review"
        catch_up(w, KIMURA)
        decide(w, f["ogawa"], OGAWA, "承認")
        assert any(number_of(m) == f["a"] for m in fresh(w, KIMURA))
