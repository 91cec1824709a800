"""Case history joins the audit chain: `ringi audit verify` catches every quiet rewrite."""

from __future__ import annotations

import hashlib
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import select

from daemon.app import App
from daemon.audit.casechain import event_hash, verify_cases
from daemon.store.condition_models import AuditEntry
from daemon.store.db import MIGRATIONS, Store, make_engine
from daemon.store.models import Case, CaseEvent
from tests.integration.test_email_loop import SATO, SUZUKI, TANAKA, TRAVEL, number_in
from tests.support import CapturingRelay, reply_to, ringi, send, write_config


def verify(app: App, tmp_path: Path) -> tuple[int, str]:
    result = ringi(write_config(app.cfg, tmp_path), "audit", "verify")
    return result.exit_code, result.output


def run_sql(app: App, sql: str, **params: object) -> None:
    with app.store.transaction() as s:
        s.execute(sa.text(sql), params)


def events_of(app: App, number: str) -> list[CaseEvent]:
    with app.store.transaction() as s:
        case_id = s.scalar(select(Case.id).where(Case.number == number))
        return list(s.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id)
                              .order_by(CaseEvent.seq)))


def approved_case(app: App, relay: CapturingRelay) -> str:
    port = app.cfg.smtp.port
    send(port, TANAKA, "Osaka customer visit", TRAVEL)
    number = number_in(relay.wait_for(TANAKA)[0].subject)
    reply_to(relay.wait_for(SATO)[0], port, SATO, "承認します")
    reply_to(relay.wait_for(SUZUKI)[0], port, SUZUKI, "承認")
    relay.wait_for(TANAKA, 3)
    return number


def test_edits_deletions_and_reordering_are_detected(daemon: App, relay: CapturingRelay,
                                                     tmp_path: Path) -> None:
    number = approved_case(daemon, relay)
    events = events_of(daemon, number)
    assert len(events) >= 4 and [e.seq for e in events] == list(range(1, len(events) + 1))
    code, out = verify(daemon, tmp_path)
    assert code == 0, out
    assert f"case histories: {len(events)} event(s) of 1 case(s) intact" in out

    first, middle, last = events[0], events[len(events) // 2], events[-1]

    # An edited reason (e.g. a forged approval comment) breaks that event's hash.
    run_sql(daemon, "UPDATE case_events SET reason = 'approved by the CEO' WHERE id = :i",
            i=middle.id)
    code, out = verify(daemon, tmp_path)
    assert code == 1 and f"case {number} event {middle.seq}: contents do not match" in out
    run_sql(daemon, "UPDATE case_events SET reason = :r WHERE id = :i",
            r=middle.reason, i=middle.id)
    assert verify(daemon, tmp_path)[0] == 0

    # Reordering: two events swap their times, or their places.
    run_sql(daemon, "UPDATE case_events SET at = :a WHERE id = :i", a=last.at, i=first.id)
    code, out = verify(daemon, tmp_path)
    assert code == 1 and f"case {number} event 1: contents do not match" in out
    run_sql(daemon, "UPDATE case_events SET at = :a WHERE id = :i", a=first.at, i=first.id)
    run_sql(daemon, "UPDATE case_events SET seq = -1 WHERE id = :i", i=first.id)
    run_sql(daemon, "UPDATE case_events SET seq = 1 WHERE id = :i", i=middle.id)
    run_sql(daemon, "UPDATE case_events SET seq = :s WHERE id = :i", s=middle.seq, i=first.id)
    code, out = verify(daemon, tmp_path)
    assert code == 1 and "does not link" in out
    run_sql(daemon, "UPDATE case_events SET seq = -1 WHERE id = :i", i=first.id)
    run_sql(daemon, "UPDATE case_events SET seq = :s WHERE id = :i", s=middle.seq, i=middle.id)
    run_sql(daemon, "UPDATE case_events SET seq = 1 WHERE id = :i", i=first.id)
    assert verify(daemon, tmp_path)[0] == 0

    # The last event removed: the case's head still names it.
    run_sql(daemon, "DELETE FROM case_events WHERE id = :i", i=last.id)
    code, out = verify(daemon, tmp_path)
    assert code == 1 and f"case {number}: history head names event {last.seq}" in out


def test_a_consistent_rewrite_is_caught_by_the_anchor(daemon: App, relay: CapturingRelay,
                                                      tmp_path: Path) -> None:
    number = approved_case(daemon, relay)
    assert daemon.timers.anchor_histories() == 1  # the timer pass fixes the head in the trail
    assert daemon.timers.anchor_histories() == 0  # nothing new since
    with daemon.store.transaction() as s:
        anchor = s.scalars(select(AuditEntry).where(
            AuditEntry.kind == "case history anchor")).one()
        assert number in anchor.data["heads"]
    events = events_of(daemon, number)
    # Someone with database access removes an approval and recomputes every later link
    # and the head: the per-case chain is consistent again, but the anchor disagrees.
    victim = next(e for e in events if e.decision == "approve")
    run_sql(daemon, "DELETE FROM case_events WHERE id = :i", i=victim.id)
    prev, seq = "0" * 64, 0
    for e in events:
        if e.id == victim.id:
            continue
        seq += 1
        digest = event_hash(prev, number, e.id, seq, e.at.isoformat(), e.kind, e.actor_id,
                            e.actor, e.decision, e.reason, e.detail)
        run_sql(daemon, "UPDATE case_events SET seq = :s, prev_hash = :p, hash = :h "
                "WHERE id = :i", s=-e.id, p=prev, h=digest, i=e.id)
        run_sql(daemon, "UPDATE case_events SET seq = :s WHERE id = :i", s=seq, i=e.id)
        prev = digest
    run_sql(daemon, "UPDATE cases SET history_seq = :s, history_hash = :h WHERE number = :n",
            s=seq, h=prev, n=number)
    code, out = verify(daemon, tmp_path)
    assert code == 1, out
    assert f"case {number}: event {len(events)} differs from the audit trail's anchor" in out
    assert "contents do not match" not in out  # the rewrite itself was consistent

    # The whole case deleted: the anchor still names it.
    for table in ("deliveries", "stamps", "executions", "reply_tokens", "case_steps",
                  "attachments", "case_events", "cases"):
        run_sql(daemon, f"DELETE FROM {table}")
    code, out = verify(daemon, tmp_path)
    assert code == 1 and f"case {number}: anchored in the audit trail but missing" in out


def test_a_clean_stop_anchors_every_history(daemon: App, relay: CapturingRelay) -> None:
    number = approved_case(daemon, relay)
    daemon.stop()
    daemon.store = type(daemon.store)(daemon.cfg.database_url)  # the fixture stops it again
    with daemon.store.transaction() as s:
        assert s.scalar(select(Case.history_unanchored).where(Case.number == number)) is False
        heads = [e.data["heads"] for e in s.scalars(
            select(AuditEntry).where(AuditEntry.kind == "case history anchor"))]
    assert any(number in h for h in heads)


def test_migration_chains_existing_histories(tmp_path: Path, db_url: str) -> None:
    """Events recorded before the chain existed are chained in their recorded order."""
    engine = make_engine(db_url)
    with engine.begin() as conn:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0011")
        conn.execute(sa.text(
            "INSERT INTO cases (id, number, case_type, title, requester_id, state, fields, "
            "created_at, updated_at, thread_id, round) VALUES (1, 'R-2026-000001', 'travel', "
            "'t', 'tanaka', 'approved', '{}', '2026-11-02 09:00:00+00:00', "
            "'2026-11-02 09:00:00+00:00', 'x', 1)"))
        for i, kind in enumerate(("received", "asked", "approved"), start=1):
            conn.execute(sa.text(
                "INSERT INTO case_events (id, case_id, at, kind, actor_id, actor, decision, "
                "reason, detail) VALUES (:i, 1, :at, :k, NULL, '{}', NULL, NULL, '')"),
                {"i": i, "at": f"2026-11-02 09:0{i}:00+00:00", "k": kind})
        command.upgrade(cfg, "head")
    engine.dispose()
    store = Store(db_url)
    with store.transaction() as s:
        assert verify_cases(s) == []
        rows = s.execute(select(CaseEvent.seq, CaseEvent.kind).order_by(CaseEvent.id)).all()
        assert [tuple(r) for r in rows] == [(1, "received"), (2, "asked"), (3, "approved")]
        head = s.scalar(select(Case.history_hash))
        assert head is not None and len(head) == 64 and head != hashlib.sha256(b"").hexdigest()
        s.execute(sa.text("UPDATE case_events SET kind = 'rejected' WHERE id = 3"))
        assert any("contents do not match" in p for p in verify_cases(s))
        s.rollback()
    store.dispose()
