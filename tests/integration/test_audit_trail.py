"""The hash-chained audit trail on every backend: verification, tampering, concurrent writers."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from daemon.audit.trail import GENESIS, AuditTrail
from daemon.cli.main import cli
from daemon.clock import FrozenClock
from daemon.store.condition_models import AuditEntry, AuditHead
from daemon.store.db import Store
from tests.support import free_port, make_config, write_config


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    st = Store(db_url)
    st.migrate()
    yield st
    st.dispose()


def fill(store: Store, trail: AuditTrail, clock: FrozenClock, n: int) -> None:
    for i in range(n):
        with store.transaction() as s:
            trail.append(s, "test event", f"p{i % 3}", f"subject {i % 4}",
                         {"i": i, "note": "承認", "nested": {"b": [1, 2.5], "a": None}})
        clock.advance(timedelta(seconds=7, microseconds=123))


def problems(store: Store) -> list[str]:
    with store.transaction() as s:
        return AuditTrail(FrozenClock()).verify(s)


def raw(store: Store, sql: str, **params: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(sql), params)


def json_param(store: Store) -> str:
    return "CAST(:d AS JSON)" if store.engine.dialect.name == "postgresql" else ":d"


def test_migration_creates_the_genesis_head(store: Store) -> None:
    with store.transaction() as s:
        heads = s.execute(select(AuditHead.id, AuditHead.seq, AuditHead.hash)).all()
        assert [tuple(h) for h in heads] == [(1, 0, GENESIS)]
        assert AuditTrail(FrozenClock()).verify(s) == []


def test_chain_verifies_after_many_appends(store: Store) -> None:
    clock = FrozenClock()
    trail = AuditTrail(clock)
    fill(store, trail, clock, 60)
    assert problems(store) == []
    with store.transaction() as s:
        entries = s.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
        assert [e.seq for e in entries] == list(range(1, 61))
        assert entries[0].prev_hash == GENESIS
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
        assert trail.head(s) == (60, entries[-1].hash)
        assert entries[5].data == {"i": 5, "note": "承認", "nested": {"b": [1, 2.5], "a": None}}


def test_append_is_part_of_the_callers_transaction(store: Store) -> None:
    trail = AuditTrail(FrozenClock())
    with pytest.raises(RuntimeError), store.transaction() as s:
        trail.append(s, "test event", None, "x", {})
        raise RuntimeError("the change being recorded failed")
    with store.transaction() as s:
        assert s.scalars(select(AuditEntry)).all() == []
        assert trail.head(s) == (0, GENESIS)
    fill(store, trail, FrozenClock(), 1)
    assert problems(store) == []


def test_altered_data_is_reported_with_its_seq(store: Store) -> None:
    clock = FrozenClock()
    fill(store, AuditTrail(clock), clock, 10)
    raw(store, f"UPDATE audit_log SET data = {json_param(store)} WHERE seq = 4",
        d=json.dumps({"i": 999}))
    found = problems(store)
    assert len(found) == 1 and found[0].startswith("seq 4: contents do not match its hash")


@pytest.mark.parametrize(("column", "value"), [("kind", "other"), ("actor", "mallory"),
                                               ("subject", "subject 9")])
def test_altered_columns_are_reported(store: Store, column: str, value: str) -> None:
    clock = FrozenClock()
    fill(store, AuditTrail(clock), clock, 5)
    raw(store, f"UPDATE audit_log SET {column} = :v WHERE seq = 2", v=value)
    assert [p.split(":")[0] for p in problems(store)] == ["seq 2"]


def test_deleted_entry_is_reported(store: Store) -> None:
    clock = FrozenClock()
    fill(store, AuditTrail(clock), clock, 10)
    raw(store, "DELETE FROM audit_log WHERE seq = 5")
    found = problems(store)
    assert found[0] == "seq 6: follows seq 4; seq 5 missing (entries removed or renumbered)"
    assert found[1].startswith("seq 6: does not link to seq 4")
    assert len(found) == 2


def test_deleted_last_entry_is_reported_by_the_head(store: Store) -> None:
    clock = FrozenClock()
    fill(store, AuditTrail(clock), clock, 3)
    raw(store, "DELETE FROM audit_log WHERE seq = 3")
    assert problems(store) == ["head: names seq 3 but the chain ends at seq 2 "
                               "(entries removed at the end, or the head was altered)"]


def test_reordered_entries_are_reported(store: Store) -> None:
    clock = FrozenClock()
    fill(store, AuditTrail(clock), clock, 6)
    raw(store, "UPDATE audit_log SET seq = -1 WHERE seq = 3")
    raw(store, "UPDATE audit_log SET seq = 3 WHERE seq = 4")
    raw(store, "UPDATE audit_log SET seq = 4 WHERE seq = -1")
    found = problems(store)
    assert {p.split(":")[0] for p in found} == {"seq 3", "seq 4", "seq 5"}
    assert "seq 3: contents do not match its hash (entry altered: test event, subject 3)" in found


def test_concurrent_writers_keep_one_intact_chain(db_url: str, store: Store) -> None:
    """Each thread has its own engine, like separate daemons on one database."""
    threads_n, each = 12, 8
    clock = FrozenClock()
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        own = Store(db_url)
        trail = AuditTrail(clock)
        try:
            barrier.wait()
            for i in range(each):
                with own.transaction() as s:
                    trail.append(s, "test event", f"w{n}", f"writer {n}", {"i": i})
        except BaseException as exc:  # reported below, never lost in the thread
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert problems(store) == []
    with store.transaction() as s:
        seqs = s.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)).all()
        per_writer = s.execute(select(AuditEntry.subject, AuditEntry.data)).all()
    assert seqs == list(range(1, threads_n * each + 1))
    for n in range(threads_n):  # every writer's entries, each once
        assert sorted(d["i"] for sub, d in per_writer if sub == f"writer {n}") == list(
            range(each))


def test_audit_cli_verify_and_show(tmp_path: Path, db_url: str, store: Store) -> None:
    cfg = str(write_config(make_config(tmp_path, db_url, None, free_port()), tmp_path))
    runner = CliRunner()
    empty = runner.invoke(cli, ["--config", cfg, "audit", "verify"])
    assert empty.exit_code == 0 and empty.output.startswith("ok: 0 entries, chain intact\n")
    clock = FrozenClock()
    fill(store, AuditTrail(clock), clock, 5)
    ok = runner.invoke(cli, ["--config", cfg, "audit", "verify"])
    assert ok.exit_code == 0, ok.output
    lines = ok.output.splitlines()
    assert lines[0] == "ok: 5 entries, chain intact"
    with store.transaction() as s:
        assert lines[1] == f"head: seq 5 sha256 {AuditTrail(clock).head(s)[1]}"

    shown = runner.invoke(cli, ["--config", cfg, "audit", "show", "--limit", "3"])
    assert shown.exit_code == 0, shown.output
    rows = shown.output.splitlines()
    assert [r.split()[0] for r in rows] == ["3", "4", "5"]  # the newest three, newest last
    assert "2026-11-02 09:00:14  test event" in rows[0] and '"note":"承認"' in rows[0]
    about = runner.invoke(cli, ["--config", cfg, "audit", "show", "--subject", "subject 1"])
    assert [r.split()[0] for r in about.output.splitlines()] == ["2"]
    none = runner.invoke(cli, ["--config", cfg, "audit", "show", "--subject", "nothing"])
    assert none.output == "no audit entries about 'nothing'\n"

    raw(store, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    bad = runner.invoke(cli, ["--config", cfg, "audit", "verify"])
    assert bad.exit_code == 1
    assert "seq 2: contents do not match its hash (entry altered: test event, subject 1)" \
        in bad.output
    assert "ok:" not in bad.output
