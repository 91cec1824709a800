"""Expiry warnings for approval relations (SPEC 7, issue 13 item 5): the registrar of a relation
ending soon is mailed once per company day until it ends or is extended. Real store (both
backends), the daemon's timer pass on a frozen clock that the tests move; one run of the real
daemon on its documented shifted clock, with the mail arriving at a relay."""

from __future__ import annotations

import datetime
import email
import email.policy
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import event, select, update

from daemon.app import App
from daemon.clock import FrozenClock
from daemon.directory.importer import relation_record
from daemon.directory.records import RelationRecord
from daemon.directory.relations import registry_for
from daemon.store.condition_models import AuditEntry
from daemon.store.directory_models import ApprovalRelation
from daemon.store.models import OutboundMail, Person
from tests.support import ROOT, CapturingRelay, free_port, make_config, ringi, write_config

UTC = datetime.UTC
D = datetime.date
RINGI = str(Path(sys.executable).parent / "ringi")


@dataclass
class Warned:
    to: str
    subject: str
    body: str


class Office:
    """ringi's store and timers on a frozen clock; nothing runs unless the test says so."""

    def __init__(self, app: App, clock: FrozenClock) -> None:
        self.app, self.clock = app, clock
        self.registry = registry_for(app.cfg, clock, app.audit)
        self.seen = 0

    def at(self, when: datetime.datetime) -> Office:
        self.clock.set(when)
        return self

    def run(self) -> list[Warned]:
        """One timer pass; the warnings it queued."""
        self.app.timers.run_once()
        return self.new()

    def new(self) -> list[Warned]:
        with self.app.store.transaction() as s:
            rows = list(s.scalars(select(OutboundMail).where(
                OutboundMail.template == "relation_expiry").order_by(OutboundMail.id)))
            out = []
            for row in rows[self.seen:]:
                msg = email.message_from_bytes(row.raw, policy=email.policy.default)
                assert isinstance(msg, EmailMessage)
                part = msg.get_body(("plain",))
                assert part is not None
                out.append(Warned(row.recipient, str(msg["Subject"]),
                                    str(part.get_content()).replace("\r\n", "\n")))
        self.seen = len(rows)
        return out

    def register(self, by: str, approver: str, obj: str, kind: str, first: D,
                 last: D | None, object_type: str = "person") -> int:
        rec = RelationRecord(approver, "unit" if object_type == "unit" else "person", obj,
                             kind, first, last, by)
        with self.app.store.transaction() as s:
            out = self.registry.change(s, by, "register", rec, None, "command",
                                       accept_gap=True)
        assert out.state == "stored" and out.relation_id is not None, out
        return out.relation_id

    def move_end(self, rid: int, by: str, last: D | None = None,
                 first: D | None = None) -> None:
        with self.app.store.transaction() as s:
            row = s.get(ApprovalRelation, rid)
            assert row is not None
            rec = relation_record(row)
            new = replace(rec, valid_to=last if last is not None else rec.valid_to,
                          valid_from=first or rec.valid_from)
            out = self.registry.change(s, by, "update", new, rid, "command", accept_gap=True)
        assert out.state == "stored", out

    def warned_on(self, rid: int) -> D | None:
        with self.app.store.transaction() as s:
            row = s.get(ApprovalRelation, rid)
            assert row is not None
            return row.warned_on

    def audited(self) -> list[AuditEntry]:
        with self.app.store.transaction() as s:
            return list(s.scalars(select(AuditEntry).where(
                AuditEntry.kind == "relation expiry warned").order_by(AuditEntry.seq)))


@contextmanager
def office(tmp_path: Path, db_url: str, start: datetime.datetime,
           org: Path | None = None, **sections: Any) -> Iterator[Office]:
    if org is not None:
        sections["directory"] = {"file": str(org)}
    cfg = make_config(tmp_path, db_url, None, free_port(), **sections)
    clock = FrozenClock(start)
    app = App(cfg, clock=clock)
    app.prepare()  # the sample organisation; its own relations end on 2027-12-31
    try:
        yield Office(app, clock)
    finally:
        app.store.dispose()


def utc(y: int, m: int, d: int, h: int = 9, mi: int = 0) -> datetime.datetime:
    return datetime.datetime(y, m, d, h, mi, tzinfo=UTC)


def test_a_proxy_is_warned_once_a_day_until_it_ends(tmp_path: Path, db_url: str) -> None:
    with office(tmp_path, db_url, utc(2027, 4, 1)) as o:
        # Watanabe (Sales' responsible approver) registers Yamamoto as Brown's proxy for April.
        rid = o.register("watanabe", "yamamoto", "brown", "proxy", D(2027, 4, 1),
                         D(2027, 4, 30))
        assert o.run() == []
        assert o.at(utc(2027, 4, 22, 23, 59)).run() == []  # 8 days left: outside the window
        assert len(o.at(utc(2027, 4, 23)).run()) == 1  # 7 days left: inside
        [mail] = o.at(utc(2027, 4, 27, 8)).run()  # 3 days left
        assert mail.to == "watanabe@example.com"  # the registrar, in their language
        assert f"承認関係 {rid} の期限: 2027年4月30日（あと3日）" in mail.subject, mail.subject
        for words in (f"承認関係:  {rid}", "承認者:    山本", "（yamamoto）", "個人 brown",
                      "代理 (proxy)", "最終日:    2027年4月30日（あと3日）",
                      f"relation update {rid}", "Valid to: YYYY-MM-DD",
                      f"ringi relation update {rid} --by watanabe --to YYYY-MM-DD"):
            assert words in mail.body, (words, mail.body)
        assert o.warned_on(rid) == D(2027, 4, 27)
        assert o.at(utc(2027, 4, 27, 23, 59)).run() == []  # not again the same day
        [again] = o.at(utc(2027, 4, 28, 0, 0)).run()
        assert "あと2日" in again.subject
        [last] = o.at(utc(2027, 4, 30, 12)).run()
        assert "期限は本日" in last.subject and "最終日:    2027年4月30日（本日）" in last.body
        assert o.at(utc(2027, 5, 1, 0, 1)).run() == []  # it has ended
        assert o.at(utc(2027, 5, 2)).run() == []
        audited = o.audited()
        assert [(a.subject, a.data["to"], a.data["days_left"]) for a in audited] == [
            (f"relation {rid}", "watanabe", 7), (f"relation {rid}", "watanabe", 3),
            (f"relation {rid}", "watanabe", 2), (f"relation {rid}", "watanabe", 0)]


def test_an_extension_stops_the_warnings_until_the_new_end_comes_near(
        tmp_path: Path, db_url: str) -> None:
    with office(tmp_path, db_url, utc(2027, 4, 1)) as o:
        rid = o.register("watanabe", "yamamoto", "brown", "proxy", D(2027, 4, 1),
                         D(2027, 4, 30))
        assert len(o.at(utc(2027, 4, 27)).run()) == 1
        o.move_end(rid, "watanabe", D(2027, 6, 30))
        for day in (28, 29, 30):
            assert o.at(utc(2027, 4, day)).run() == []
        assert o.at(utc(2027, 6, 22)).run() == []
        [mail] = o.at(utc(2027, 6, 23)).run()  # back in the window: warnings resume
        assert "2027年6月30日（あと7日）" in mail.subject
        # Ended early (within the window): warned until that last day, then silence.
        o.move_end(rid, "watanabe", D(2027, 6, 24))
        [mail] = o.at(utc(2027, 6, 24)).run()
        assert "期限は本日" in mail.subject
        assert o.at(utc(2027, 6, 25)).run() == []


def test_the_company_day_turns_in_the_company_time_zone(tmp_path: Path, db_url: str) -> None:
    """Tokyo is UTC+9: its day starts at 15:00 UTC the day before."""
    with office(tmp_path, db_url, utc(2027, 4, 1),
                workflow={"timezone": "Asia/Tokyo"}) as o:
        rid = o.register("watanabe", "yamamoto", "brown", "proxy", D(2027, 4, 1),
                         D(2027, 4, 30))
        assert o.at(utc(2027, 4, 22, 14, 59)).run() == []  # 22 April 23:59 in Tokyo: 8 left
        [first] = o.at(utc(2027, 4, 22, 15, 0)).run()  # 23 April in Tokyo, still the 22nd UTC
        assert "あと7日" in first.subject
        assert o.warned_on(rid) == D(2027, 4, 23)
        assert o.at(utc(2027, 4, 23, 14, 59)).run() == []  # the same Tokyo day
        [second] = o.at(utc(2027, 4, 23, 15, 0)).run()
        assert "あと6日" in second.subject
        [today] = o.at(utc(2027, 4, 29, 15, 30)).run()  # 30 April in Tokyo: its last day
        assert "期限は本日" in today.subject
        assert o.at(utc(2027, 4, 30, 14, 0)).run() == []  # 23:00 in Tokyo, same day
        assert o.at(utc(2027, 4, 30, 15, 0)).run() == []  # 1 May in Tokyo: it has ended


def test_a_responsible_relation_is_warned_only_when_its_end_leaves_a_gap(
        tmp_path: Path, db_url: str) -> None:
    with office(tmp_path, db_url, utc(2027, 4, 1)) as o:
        # Ito (Accounting) registers Mori as Procurement's responsible approver for April.
        rid = o.register("ito", "mori", "procurement", "responsible", D(2027, 4, 1),
                         D(2027, 4, 30), object_type="unit")
        [mail] = o.at(utc(2027, 4, 27)).run()
        assert mail.to == "ito@example.com"
        for words in ("部署 procurement", "責任者 (responsible)", "2027年5月1日以降",
                      f"relation update {rid}", "翌日から引き継ぐ"):
            assert words in mail.body, (words, mail.body)
        assert o.audited()[-1].data["gaps"] == ["from 2027-05-01 on"]
        # A successor from 5 May: the days between are named.
        nxt = o.register("ito", "yamamoto", "procurement", "responsible", D(2027, 5, 5), None,
                         object_type="unit")
        [mail] = o.at(utc(2027, 4, 28)).run()
        assert "2027年5月1日～2027年5月4日" in mail.body, mail.body
        # The successor takes over on 1 May: no gap, no warning, whatever the hour.
        o.move_end(nxt, "ito", first=D(2027, 5, 1))
        assert o.at(utc(2027, 4, 29)).run() == []
        assert o.at(utc(2027, 4, 29, 18)).run() == []
        assert o.at(utc(2027, 4, 30)).run() == []
        assert o.warned_on(rid) == D(2027, 4, 28)
        assert o.warned_on(nxt) is None


def test_a_file_relation_warns_the_administrator(tmp_path: Path, db_url: str) -> None:
    """The directory file's relations name no registrar: the administrator changes them."""
    org = tmp_path / "org.toml"
    org.write_text((ROOT / "samples" / "organisation.toml").read_text().replace(
        'registered_by = "admin"\n', ""))
    with office(tmp_path, db_url, utc(2027, 12, 20), org=org) as o:
        assert o.run() == []
        mails = o.at(utc(2027, 12, 28)).run()
        # Two proxies, and Sales' responsible approver, whose end leaves Sales without one.
        assert [m.to for m in mails] == ["admin@example.com"] * 3
        subjects = [m.subject for m in mails]
        assert sorted(s.split(": ", 1)[1] for s in subjects) == [
            "sato -> person suzuki proxy", "takahashi -> person brown proxy",
            "watanabe -> unit sales responsible"], subjects
        sales = next(m for m in mails if "unit sales" in m.subject)
        for words in ("ends 31 Dec 2027 (3 days left)", "from the directory file",
                      "After that day unit sales has no responsible approver:",
                      "- from 1 Jan 2028 on", "ringi directory import FILE"):
            assert words in sales.subject + sales.body, (words, sales.body)
        assert "relation update" not in sales.body  # a file relation changes in the file
        assert o.at(utc(2027, 12, 28, 20)).run() == []


def test_a_registrar_who_left_is_replaced_by_the_administrator(tmp_path: Path,
                                                               db_url: str) -> None:
    with office(tmp_path, db_url, utc(2027, 4, 1)) as o:
        rid = o.register("watanabe", "yamamoto", "brown", "proxy", D(2027, 4, 1),
                         D(2027, 4, 30))
        with o.app.store.transaction() as s:
            s.execute(update(Person).where(Person.id == "watanabe").values(active=False))
        [mail] = o.at(utc(2027, 4, 27)).run()
        assert mail.to == "admin@example.com"
        assert "registered by watanabe, who is no longer in the directory" in mail.body
        assert f"ringi relation update {rid} --by admin --to YYYY-MM-DD" in mail.body


def test_warn_days_zero_sends_nothing(tmp_path: Path, db_url: str) -> None:
    with office(tmp_path, db_url, utc(2027, 4, 1), relations={"warn_days": 0}) as o:
        rid = o.register("watanabe", "yamamoto", "brown", "proxy", D(2027, 4, 1),
                         D(2027, 4, 30))
        for day in (27, 30):
            assert o.at(utc(2027, 4, day)).run() == []
        assert o.warned_on(rid) is None and o.audited() == []


def test_a_warning_that_fails_is_neither_lost_nor_recorded(tmp_path: Path, db_url: str) -> None:
    """The day's mark, the mail and the audit entry are one transaction: a failure while
    queueing the mail leaves no mark, and the next pass sends it."""
    with office(tmp_path, db_url, utc(2027, 4, 1)) as o:
        rid = o.register("watanabe", "yamamoto", "brown", "proxy", D(2027, 4, 1),
                         D(2027, 4, 30))
        expiry = o.app.timers.expiry
        assert expiry is not None
        real = expiry.notifier.to_member

        def broken(*args: Any, **kwargs: Any) -> None:
            real(*args, **kwargs)
            raise OSError("disk full")

        expiry.notifier.to_member = broken  # type: ignore[method-assign]
        assert o.at(utc(2027, 4, 27)).run() == []
        assert o.warned_on(rid) is None and o.audited() == []
        expiry.notifier.to_member = real  # type: ignore[method-assign]
        assert len(o.run()) == 1
        assert o.warned_on(rid) == D(2027, 4, 27) and len(o.audited()) == 1


def test_two_daemons_on_one_database_warn_once(tmp_path: Path, db_url: str) -> None:
    with office(tmp_path, db_url, utc(2027, 4, 1)) as o:
        for i, approver in enumerate(("yamamoto", "suzuki", "ito", "mori")):
            o.register("watanabe", approver, "brown", "proxy", D(2027, 4, 1),
                       D(2027, 4, 27 + i))
        other = App(o.app.cfg, clock=o.clock)
        try:
            o.at(utc(2027, 4, 27))
            jobs = [o.app.timers.expiry, other.timers.expiry]
            start = threading.Barrier(2)
            done: list[int] = []

            def run(job: Any) -> None:
                start.wait()
                done.append(job.due())

            threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
            for th in threads:
                th.start()
            for th in threads:
                th.join(60)
            assert sum(done) == 4, done
            assert len(o.new()) == 4 and len(o.audited()) == 4
        finally:
            other.store.dispose()


def test_a_pass_reads_only_the_relations_in_the_window(tmp_path: Path, db_url: str) -> None:
    """One statement when nothing is due, however many relations there are."""
    with office(tmp_path, db_url, utc(2027, 4, 1)) as o:
        expiry = o.app.timers.expiry
        assert expiry is not None

        def statements() -> int:
            seen: list[str] = []
            me = threading.get_ident()

            def count(_c: Any, _cur: Any, sql: str, *_a: Any) -> None:
                if threading.get_ident() == me:
                    seen.append(sql)

            event.listen(o.app.store.engine, "before_cursor_execute", count)
            try:
                assert expiry.due() == 0
            finally:
                event.remove(o.app.store.engine, "before_cursor_execute", count)
            return len([q for q in seen if q.lstrip().upper().startswith("SELECT")])

        few = statements()
        with o.app.store.transaction() as s:
            for i in range(300):
                s.add(ApprovalRelation(
                    approver_id="yamamoto", object_type="person", object_id=f"p{i}",
                    kind="proxy", valid_from=D(2027, 1, 1), valid_to=D(2027, 9, 1),
                    registered_by="watanabe", registered_at=utc(2027, 1, 1), active=True,
                    source="registered"))
        assert statements() == few == 1
        # A responsible relation without a gap is judged once a day, not on every pass.
        o.register("ito", "mori", "procurement", "responsible", D(2027, 4, 1), D(2027, 4, 30),
                   object_type="unit")
        o.register("ito", "yamamoto", "procurement", "responsible", D(2027, 5, 1), None,
                   object_type="unit")
        o.at(utc(2027, 4, 27))
        assert o.run() == []
        assert statements() == 1


def test_the_daemon_on_a_shifted_clock_mails_the_warning(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    """`ringi --clock-offset 27d run`, as docs/employees.md documents for a rehearsal."""
    cfg = make_config(tmp_path, db_url, relay.port, free_port(),
                      workflow={"timer_seconds": 0.2})
    cfg_file = write_config(cfg, tmp_path)
    assert ringi(cfg_file, "directory", "import",
                 str(ROOT / "samples" / "organisation.toml")).exit_code == 0
    today = datetime.datetime.now(UTC).date()
    last = today + datetime.timedelta(days=30)
    added = ringi(cfg_file, "relation", "add", "--by", "watanabe", "--approver", "yamamoto",
                  "--person", "brown", "--kind", "proxy", "--from", today.isoformat(),
                  "--to", last.isoformat())
    assert added.exit_code == 0, added.output
    rid = added.output.split()[2]
    env = {**os.environ, "RINGI_CONFIG": str(cfg_file)}
    env.pop("RINGI_CLOCK_OFFSET", None)
    log = tmp_path / "daemon.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([RINGI, "--clock-offset", "27d", "run"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            [mail] = relay.wait_for("watanabe@example.com", timeout=60)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
    assert "clock offset +27d in effect" in log.read_text()
    day = f"{last.year}年{last.month}月{last.day}日"
    assert f"承認関係 {rid} の期限: {day}" in mail.subject, mail.subject
    assert f"relation update {rid}" in mail.body and "Valid to: YYYY-MM-DD" in mail.body
    assert len(relay.to("watanabe@example.com")) == 1  # once, however many passes ran
