"""Execution requests on approval (SPEC 6.5), end to end over SMTP on both backends.

Smith's purchases pass Takahashi and Brown in person, Watanabe's stored conditions
(`execute = true`) approve them automatically, and procurement (Clark, then Mori) approves by
reply. What reaches the destination, and what the requester is told, is checked mail by mail.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.app import App
from daemon.cli.inspect import print_case
from daemon.store.condition_models import Execution
from daemon.store.models import OutboundMail, WorkItem
from tests.integration.test_conditions import CLARK, purchase, through_line
from tests.integration.test_outcomes import (
    ADMIN,
    SATO,
    SMITH,
    SUZUKI,
    TANAKA,
    World,
    number_of,
    start_world,
)
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

MORI = "mori@example.com"
ACME = "orders@acme.example"
DESK = "purchasing-desk@example.com"
MONDAY_10_JST = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
FRIDAY_18_JST = datetime(2026, 11, 6, 9, 0, tzinfo=UTC)
MONDAY_OPENING = datetime(2026, 11, 9, 0, 0, tzinfo=UTC)  # 09:00 in Tokyo


@pytest.fixture
def world(tmp_path: Path, db_url: str, relay: CapturingRelay) -> Iterator[World]:
    w = start_world(tmp_path, db_url, relay)
    w.clock.set(MONDAY_10_JST)  # inside every sample destination's hours
    yield w
    w.app.stop()


def procurement_approves(w: World, requester: str = SMITH) -> Captured:
    """Clark and Mori approve by reply; returns the requester's approval notice."""
    w.new(requester)  # progress: on to procurement
    w.reply(w.one(CLARK), CLARK, "approve")
    w.new(CLARK)
    w.new(requester)
    w.reply(w.one(MORI), MORI, "承認")
    w.new(MORI)
    approved = w.one(requester)
    assert "Approved" in approved.subject or "承認されました" in approved.subject
    return approved


def attachment(mail: Captured) -> tuple[str, str, bytes]:
    parts = list(mail.message.iter_attachments())
    assert len(parts) == 1, [p.get_filename() for p in parts]
    part = parts[0]
    assert isinstance(part, EmailMessage)
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return str(part.get_filename()), part.get_content_type(), data


def executions(w: World) -> list[Execution]:
    with w.app.store.transaction() as s:
        return list(s.scalars(select(Execution).order_by(Execution.id)))


def test_automatic_approval_sends_the_order_as_json(world: World,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    w = world
    number = through_line(w, purchase("180,000", extra="Delivery date: 2026-12-01\n"))
    approved = procurement_approves(w)
    assert "Executing: the execution request is being sent to ACME order desk now" \
        in approved.body
    order = w.one(ACME)
    assert order.subject == f"Purchase order {number}: Laptop"
    assert "Amount:          JPY 180,000 (tax included)" in order.body
    assert "Delivery by:     2026-12-01" in order.body
    assert "Approved:        2 Nov 2026 10:00 (Asia/Tokyo)" in order.body
    assert str(order.message["Reply-To"]) == SMITH  # the supplier's questions go to Smith
    assert order.message["Auto-Submitted"] == "auto-generated"
    name, ctype, data = attachment(order)
    assert (name, ctype) == (f"order-{number}.json", "application/json")
    assert json.loads(data) == {
        "case_number": number, "case_type": "purchase", "title": "Purchase",
        "requester": {"id": "smith", "name": "John Smith", "email": SMITH, "unit": "sales"},
        "approved_at": "2026-11-02T01:00:00+00:00",
        "fields": {"item": "Laptop", "supplier": "ACME", "quantity": 1, "amount": "180000",
                   "delivery_date": "2026-12-01", "category": "equipment"},
    }
    executed = w.one(SMITH)
    assert executed.subject.startswith(f"[{number}] Executed: Purchase request / John Smith / ")
    assert "sent\nto ACME order desk at 2 Nov 2026 01:00 (UTC)" in executed.body
    w.nothing_more(SMITH, ACME, DESK, ADMIN)
    assert w.case(number).state == "completed"
    (ex,) = executions(w)
    assert (ex.state, ex.destination, ex.address) == ("sent", "acme-orders", ACME)
    history = [d for k, d in w.events(number) if k == "execution"]
    assert history[0].startswith("execution request to acme-orders <orders@acme.example> "
                                 "scheduled now; enabled by watanabe-sales-purchases")
    assert history[1].startswith("executed: execution request sent to acme-orders")
    capsys.readouterr()
    assert print_case(w.app, number)
    shown = capsys.readouterr().out
    assert "state:     completed" in shown
    assert "executions:\n  sent: acme-orders <orders@acme.example>, due 2026-11-02 01:00 UTC, " \
        "sent 2026-11-02 01:00 UTC [enabled by watanabe-sales-purchases]" in shown


def test_approved_by_people_only_is_not_executed(world: World) -> None:
    """Tanaka (Engineering) is outside Watanabe's conditions: people approve every step."""
    w = world
    w.send(TANAKA, "ノートPC", purchase("180,000"))
    number = number_of(w.one(TANAKA))
    w.reply(w.one(SATO), SATO, "承認")
    w.new(SATO)
    w.new(TANAKA)
    w.reply(w.one(SUZUKI), SUZUKI, "承認")
    w.new(SUZUKI)
    approved = procurement_approves(w, TANAKA)
    assert "未実行: この申請は人による承認で、自動実行を認める事前設定の承認条件がない" \
        in approved.body
    assert "購入先への発注など、手配はご自身でお願いします。" in approved.body  # a purchase
    w.nothing_more(TANAKA, ACME, DESK, ADMIN)
    assert w.case(number).state == "approved"
    (ex,) = executions(w)
    assert (ex.state, ex.reason) == ("not_executed", "not_enabled")
    assert ("execution", "not executed: approved by people; no stored condition enables "
            "automatic execution") in w.events(number)


def test_outside_hours_waits_for_the_next_opening(world: World) -> None:
    w = world
    w.clock.set(FRIDAY_18_JST)  # ACME closed at 17:00; then the weekend
    number = through_line(w, purchase("180,000"))
    approved = procurement_approves(w)
    assert "Scheduled: the execution request will be sent to ACME order desk when it next\n" \
        "accepts requests: 9 Nov 2026 00:00 (UTC)." in approved.body
    assert w.app.execution_runner.drain() == 0
    w.clock.set(MONDAY_OPENING - timedelta(minutes=1))
    assert w.app.execution_runner.drain() == 0
    w.nothing_more(SMITH, ACME)
    w.clock.set(MONDAY_OPENING)
    order = w.one(ACME)  # the daemon's own execution runner sends it
    assert f"order-{number}.json" == attachment(order)[0]
    assert "at 9 Nov 2026 00:00 (UTC)" in w.one(SMITH).body
    w.nothing_more(SMITH, ACME, ADMIN)
    assert w.case(number).state == "completed"


def test_default_destination_gets_csv_in_its_language(world: World) -> None:
    w = world
    number = through_line(w, purchase("48,000", "software").replace("ACME", "Globex 商会"))
    approved = procurement_approves(w)
    assert "being sent to the purchasing desk now" in approved.body
    order = w.one(DESK)
    assert order.subject.startswith(f"[{number}] 実行依頼: ") and "円" in order.subject
    assert "purchasing-desk@example.com" not in order.body and "金額: 48,000" in order.body
    name, ctype, data = attachment(order)
    assert (name, ctype) == (f"order-{number}.csv", "text/csv")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    assert rows[0] == ["case_number", "case_type", "title", "requester_id", "requester_name",
                       "requester_email", "requester_unit", "approved_at", "item", "supplier",
                       "quantity", "amount", "category"]
    assert rows[1] == [number, "purchase", "Purchase", "smith", "ジョン・スミス", SMITH, "sales",
                       "2026-11-02T01:00:00+00:00", "Laptop", "Globex 商会", "1", "48000",
                       "software"]
    assert "Executed" in w.one(SMITH).subject
    w.nothing_more(SMITH, ACME, DESK)


def test_no_destination_is_not_executed(tmp_path: Path, db_url: str,
                                        relay: CapturingRelay) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    dests = rules / "destinations.toml"
    dests.write_text(dests.read_text().replace('address = "purchasing-desk@example.com"',
                                               'address = ""'))
    w = start_world(tmp_path, db_url, relay, rules=rules, paths={"rules": str(rules)})
    try:
        w.clock.set(MONDAY_10_JST)
        number = through_line(w, purchase("48,000").replace("ACME", "Globex"))
        approved = procurement_approves(w)
        assert "Not executed: the stored approval conditions allow automatic execution, but " \
            "no destination\nis set up" in approved.body
        w.nothing_more(SMITH, ACME, DESK, ADMIN)
        (ex,) = executions(w)
        assert (ex.state, ex.reason) == ("not_executed", "no_destination")
        assert any(k == "execution" and d.startswith(
            "not executed: enabled by watanabe-sales-purchases, but no destination takes")
            for k, d in w.events(number))
    finally:
        w.app.stop()


def test_temporary_failure_retries_the_same_mail(world: World) -> None:
    w = world
    w.relay.refuse[ACME] = ["451 4.3.0 try again later"]
    number = through_line(w, purchase("180,000"))
    procurement_approves(w)

    def retried() -> bool:
        with w.app.store.transaction() as s:
            return bool(s.scalar(select(WorkItem.last_error).where(
                WorkItem.queue == "execution", WorkItem.state == "queued")))
    wait_until(retried, what="the first attempt to fail")
    assert w.relay.to(ACME) == []
    w.clock.advance(timedelta(seconds=5))  # past the back-off
    order = w.one(ACME)
    assert "Executed" in w.one(SMITH).subject
    with w.app.store.transaction() as s:
        stored = s.scalars(select(OutboundMail).where(
            OutboundMail.template == "execution_request")).all()
    assert [m.message_id for m in stored] == [str(order.message["Message-ID"])]
    w.nothing_more(SMITH, ACME, ADMIN)
    assert w.case(number).state == "completed"


def test_refused_request_is_not_executed_and_the_administrator_told(world: World) -> None:
    w = world
    w.relay.refuse[ACME] = ["554 5.7.1 no such mailbox"]
    number = through_line(w, purchase("180,000"))
    procurement_approves(w)
    failed = w.one(SMITH)
    assert failed.subject.startswith(f"[{number}] Not executed: Purchase request / John Smith / ")
    assert "could not\nbe sent to ACME order desk (554 5.7.1 no such mailbox)" in failed.body
    admin = w.one(ADMIN)
    assert "Not executed" in admin.subject and "ringi queue retry" in admin.body
    w.nothing_more(SMITH, ACME, ADMIN)
    (ex,) = executions(w)
    assert ex.state == "failed" and w.case(number).state == "approved"
    with w.app.store.transaction() as s:
        item = s.scalar(select(WorkItem).where(WorkItem.queue == "execution"))
        assert item is not None and item.state == "dead"
        item_id = item.id
    assert f"ringi queue retry {item_id}" in admin.body
    assert w.app.queue.retry(item_id)  # the operator sends it after all
    w.app.execution_runner.drain()
    assert attachment(w.one(ACME))[0] == f"order-{number}.json"
    assert "Executed" in w.one(SMITH).subject


def with_rules(tmp_path: Path, edit: dict[str, str]) -> Path:
    """A copy of the sample rules with `old -> new` replacements in destinations.toml."""
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    dests = rules / "destinations.toml"
    text = dests.read_text()
    for old, new in edit.items():
        assert old in text, old
        text = text.replace(old, new)
    dests.write_text(text)
    return rules


def test_destination_asking_for_csv_and_an_order_it_cannot_encode(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    """ACME switched to Shift_JIS CSV: an emoji cannot be written, so the request is not
    executed at once (no pointless retries) and both the requester and admin are told."""
    rules = with_rules(tmp_path, {'format = "json"\nlocale = "en"':
                                  'format = "csv"\nencoding = "cp932"\nlocale = "en"'})
    w = start_world(tmp_path, db_url, relay, rules=rules, paths={"rules": str(rules)})
    try:
        w.clock.set(MONDAY_10_JST)
        through_line(w, purchase("9,800").replace("Laptop", "ノートPC"))
        procurement_approves(w)
        order = w.one(ACME)
        name, ctype, data = attachment(order)
        assert name.endswith(".csv") and ctype == "text/csv"
        assert "ノートPC".encode("cp932") in data
        assert next(csv.reader(io.StringIO(data.decode("cp932"))))[0] == "case_number"
        w.one(SMITH)  # executed

        number = through_line(w, purchase("9,800").replace("Laptop", "Laptop 💻"))
        procurement_approves(w)
        failed = w.one(SMITH)
        assert failed.subject.startswith(
            f"[{number}] Not executed: Purchase request / John Smith / ")
        assert "the request could not be built: 'cp932' codec can't encode" in failed.body
        assert "Not executed" in w.one(ADMIN).subject
        w.nothing_more(SMITH, ACME, ADMIN)
        with w.app.store.transaction() as s:
            attempts = s.scalars(select(WorkItem.attempts).where(
                WorkItem.queue == "execution").order_by(WorkItem.id)).all()
        assert attempts == [1, 1]
    finally:
        w.app.stop()


def test_rules_check_lists_and_validates_destinations(tmp_path: Path) -> None:
    def check(rules: Path) -> tuple[int, str]:
        cfg = make_config(tmp_path, f"sqlite:///{tmp_path / 'r.db'}", None, free_port(),
                          paths={"rules": str(rules)})
        cfg_file = write_config(cfg, tmp_path)
        out = ringi(cfg_file, "rules", "check")
        return out.exit_code, out.output

    code, output = check(ROOT / "rules")
    assert code == 0, output
    assert "destination acme-orders: purchase when case.supplier.startsWith('ACME') -> " \
        "orders@acme.example (json, en, template acme_order; open MTWTF-- 09:00-17:00 " \
        "Asia/Tokyo, 6 holiday(s))" in output
    assert "destination purchasing-desk: any other case -> purchasing-desk@example.com " \
        "(csv, ja" in output
    bad = with_rules(tmp_path, {'hours = "09:00-17:00"': 'hours = "9 to 5"'})
    code, output = check(bad)
    assert code == 1
    assert f"{bad / 'destinations.toml'}: destination 'acme-orders': calendar: hours " \
        "'9 to 5'" in output
    cfg = make_config(tmp_path, f"sqlite:///{tmp_path / 'r.db'}", None, free_port(),
                      paths={"rules": str(bad)})
    app = App(cfg)  # a refused destinations file does not stop the start (none ever good)
    try:
        (broken,) = app.broken_rules
        assert broken.kind == "destinations" and len(broken.errors) == 1
        assert broken.in_force.startswith("no good version is stored: no destination is in "
                                          "force")
        assert app.executions.destinations.all() == []
    finally:
        app.store.dispose()
