"""Drop folders: complete inputs only, refused kinds land in rejected/ with a reason."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from daemon.app import App
from daemon.clock import FrozenClock
from daemon.store.models import Attachment, Case, InboundMessage
from tests.support import ROOT, CapturingRelay, free_port, make_config, wait_until

FORM = """type = "travel"
title = "Osaka visit {n}"
destination = "Osaka"
purpose = "Customer visit"
departure_date = 2026-11-10
return_date = 2026-11-11
amount = 24500
"""


def cases(app: App) -> list[Case]:
    with app.store.transaction() as s:
        return list(s.scalars(select(Case).order_by(Case.id)))


def case_count(app: App) -> int:
    """For polling: a count, not 1,000 loaded rows fifty times a second in the daemon's
    own process."""
    with app.store.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(Case)) or 0)


@pytest.fixture
def drop_app(tmp_path: Path, db_url: str, relay: CapturingRelay) -> Iterator[App]:
    drop = tmp_path / "drop"
    cfg = make_config(tmp_path, db_url, relay.port, free_port(), drop={
        "stable_seconds": 0.3, "rescan_seconds": 0.5, "max_bytes": 100_000,
        "admin_folder": str(drop / "admin"),
        "folders": [
            {"name": "tanaka", "path": str(drop / "tanaka"), "person": "tanaka"},
            {"name": "sales", "path": str(drop / "sales"), "unit": "sales",
             "owners": {"root": "smith"}},
            {"name": "eng", "path": str(drop / "eng"), "unit": "eng",
             "owners": {"root": "smith"}},
        ]})
    app = App(cfg)
    app.prepare()
    app.start()
    yield app
    app.stop()


def folder(app: App, name: str) -> Path:
    for f in app.cfg.drop.folders:
        if f.name == name:
            return f.path
    raise KeyError(name)


def test_form_file_and_bundle_become_cases(drop_app: App, relay: CapturingRelay) -> None:
    base = folder(drop_app, "tanaka")
    (base / "trip.toml.part").write_text(FORM.format(n=1))
    os.rename(base / "trip.toml.part", base / "trip.toml")
    bundle = base / "receipts.tmp"
    bundle.mkdir()
    (bundle / "form.yaml").write_text("種別: travel\n出張先: 京都\n目的: 展示会\n"
                                      "出発日: 2026-11-12\n帰着日: 2026-11-12\n金額: 8,000円\n")
    (bundle / "領収書.pdf").write_bytes(b"%PDF receipt")
    os.rename(bundle, base / "receipts")
    wait_until(lambda: len(cases(drop_app)) == 2, 20, "two cases")
    titles = sorted(c.title for c in cases(drop_app))
    assert titles == ["Osaka visit 1", "出張旅費精算"]  # tanaka is ja: default title in Japanese
    relay.wait_for("sato@example.com", 2)
    with drop_app.store.transaction() as s:
        att = s.scalars(select(Attachment)).one()
    assert att.filename == "領収書.pdf" and att.size == len(b"%PDF receipt")
    processed = sorted(p.name for p in (base / "processed").iterdir())
    assert any(p.endswith("-trip.toml") for p in processed)
    assert any(p.endswith("-receipts") for p in processed)
    assert sorted(p.name for p in base.iterdir()) == ["processed", "rejected"]


def test_unit_folder_maps_the_file_owner(drop_app: App, relay: CapturingRelay) -> None:
    # Files here are owned by root, mapped to smith (Sales) by the folder's owner table.
    (folder(drop_app, "sales") / "trip.json").write_text(
        '{"type": "travel", "destination": "Kobe", "purpose": "Trade fair", '
        '"departure date": "2026-11-20", "return date": "2026-11-21", "amount": 15000}')
    wait_until(lambda: len(cases(drop_app)) == 1, 20, "a case")
    assert cases(drop_app)[0].requester_id == "smith"
    # The same owner dropping into Engineering's folder is not a member there: refused.
    eng = folder(drop_app, "eng")
    (eng / "trip.json").write_text('{"type": "travel"}')
    wait_until(lambda: list((eng / "rejected").glob("*.error.txt")), 20, "a rejection")
    err = next((eng / "rejected").glob("*.error.txt")).read_text()
    assert "is not a member of the unit 'eng'" in err


def refused_kinds(base: Path, outside: Path) -> dict[str, str]:
    """Create one input of each refused kind; returns name -> expected words in the error."""
    (outside / "secret.toml").write_text(FORM.format(n=0))
    os.symlink(outside / "secret.toml", base / "link.toml")
    os.mkfifo(base / "pipe.toml")
    os.link(outside / "secret.toml", base / "hard.toml")
    (base / "..\\escape.toml").write_text(FORM.format(n=0))
    (base / "big.toml").write_text(FORM.format(n=0) + "notes = '" + "x" * 200_000 + "'\n")
    (base / "broken.toml").write_text("type = 'travel'\ndestination = \n")
    (base / "fields.toml").write_text("type = 'travel'\ndestination = 'Osaka'\namount = 'lots'\n")
    (base / "notes.txt").write_text("hello")
    linked = base / "linkbundle"
    linked.mkdir()
    (linked / "form.toml").write_text(FORM.format(n=0))
    os.symlink("/etc/passwd", linked / "passwd")
    return {
        "link.toml": "symbolic links are not accepted",
        "pipe.toml": "device, FIFO or socket",
        "hard.toml": "hard link",
        "..\\escape.toml": "path separator",
        "big.toml": "the limit is 100,000 bytes",
        "broken.toml": "not valid TOML",
        "fields.toml": "'lots' is not an amount of money",
        "notes.txt": "is not a form file",
        "linkbundle": "passwd in the folder is a symbolic link",
    }


def test_each_refused_kind_is_explained(drop_app: App, relay: CapturingRelay,
                                        tmp_path: Path) -> None:
    base = folder(drop_app, "tanaka")
    outside = tmp_path / "outside"
    outside.mkdir()
    expected = refused_kinds(base, outside)
    rejected = base / "rejected"

    def explained() -> dict[str, str]:
        out = {}
        for err in rejected.glob("*.error.txt"):
            name = err.name.removesuffix(".error.txt").split("-", 1)[1]
            out[name] = err.read_text()
        return out

    wait_until(lambda: set(explained()) == set(expected), 20, "every refusal")
    for name, words in expected.items():
        assert words in explained()[name], (name, explained()[name])
    # Nothing outside the folder was touched or read into a case.
    assert (outside / "secret.toml").read_text() == FORM.format(n=0)
    assert cases(drop_app) == []
    # The person hears about a refused form with the fix, in their language.
    wanted = "「lots」は金額として読めません"
    wait_until(lambda: [m for m in relay.to("tanaka@example.com")
                        if "受付できません" in m.subject and wanted in m.body],
               20, "the refusal mail in Japanese")
    # ... and the daemon is still taking good input.
    (base / "good.toml").write_text(FORM.format(n=7))
    wait_until(lambda: len(cases(drop_app)) == 1, 20, "the good case")


def test_admin_folder_imports_directory(drop_app: App) -> None:
    admin = drop_app.cfg.drop.admin_folder
    assert admin is not None
    text = (ROOT / "samples" / "organisation.toml").read_text()
    (admin / "org.toml").write_text(text.replace('"brown"', '"green"'))  # id and relation
    wait_until(lambda: list((admin / "processed").glob("*.result.txt")), 20, "an import")
    result = next((admin / "processed").glob("*.result.txt")).read_text()
    assert "+ person green" in result and "- person brown" in result
    (admin / "bad.toml").write_text(text.replace('unit = "eng"', 'unit = "nowhere"', 1))
    wait_until(lambda: list((admin / "rejected").glob("*.error.txt")), 20, "a refusal")
    err = next((admin / "rejected").glob("*.error.txt")).read_text()
    assert "bad.toml:" in err and "nowhere" in err
    # The relation rules hold here too: a proxy for someone not in the file is refused.
    (admin / "stale.toml").write_text(text.replace('id = "brown"', 'id = "green"'))
    wait_until(lambda: list((admin / "rejected").glob("*stale.toml.error.txt")), 20, "a refusal")
    err = next((admin / "rejected").glob("*stale.toml.error.txt")).read_text()
    line = text.split('approver = "takahashi"')[0].count("\n")  # its [[relations]] line
    assert f"stale.toml:{line}: relation #2: person brown is not in the directory" in err


def test_stability_and_crash_between_store_and_move(tmp_path: Path, db_url: str) -> None:
    """Moved clock, no sleeping: an input is taken only after it stopped changing, and
    one stored but not moved (crash) is not stored twice by the next scan."""
    clock = FrozenClock()
    base = tmp_path / "drop"
    cfg = make_config(tmp_path, db_url, None, free_port(), drop={
        "stable_seconds": 5, "folders": [{"name": "t", "path": str(base), "person": "tanaka"}]})
    app = App(cfg, clock=clock)
    app.prepare()
    (scanner,) = app.watcher.scanners
    base.mkdir(parents=True, exist_ok=True)
    (base / "a.toml").write_text(FORM.format(n=1)[:40])  # half written
    assert scanner.scan() == 1
    clock.advance(timedelta(seconds=4))
    with open(base / "a.toml", "a") as fh:  # the writer continues
        fh.write(FORM.format(n=1)[40:])
    assert scanner.scan() == 1  # changed: the wait starts again
    clock.advance(timedelta(seconds=4))
    assert scanner.scan() == 1
    assert not (base / "rejected").exists() or not list((base / "rejected").iterdir())
    clock.advance(timedelta(seconds=1))
    # Simulate a crash after the store but before the move: take it, leave the file.
    from daemon.intake.dropsafety import examine, open_folder

    opened = open_folder(base)
    try:
        scanner.taker.take(examine(opened.fd, "a.toml", cfg.drop.max_bytes, base))
    finally:
        opened.close()
    assert scanner.scan() == 0
    assert not (base / "a.toml").exists()
    with app.store.transaction() as s:
        assert s.scalar(select(func.count()).select_from(InboundMessage)) == 1
    assert app.inbound_runner.drain() == 1
    assert len(cases(app)) == 1
    app.stop()


WRITER = """
import os, sys, time
base, mode, lo, hi, form = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
bodies = {i: form.format(n=i) for i in range(lo, hi)}
if mode == "renamed":  # written under another name, then renamed into place
    for i in range(lo, hi):
        with open(f"{base}/r{i:04}.toml.tmp", "w") as fh:
            fh.write(bodies[i])
        os.rename(f"{base}/r{i:04}.toml.tmp", f"{base}/r{i:04}.toml")
else:  # written in place in three bursts, 0.4 s apart
    third = len(bodies[lo]) // 3
    handles = {}
    for i in range(lo, hi):
        handles[i] = open(f"{base}/s{i:04}.toml", "w")
        handles[i].write(bodies[i][:third])
        handles[i].flush()
    for part in (1, 2):
        time.sleep(0.4)
        for i, fh in handles.items():
            fh.write(bodies[i][part * third: None if part == 2 else (part + 1) * third])
            fh.flush()
    for fh in handles.values():
        fh.close()
"""


@pytest.mark.timeout(600)  # the same bound as its own wait: a busy machine is slower
def test_thousand_files_exactly_once(tmp_path: Path, db_url: str) -> None:
    """1,000 inputs at once: half written then renamed, half written slowly in place."""
    base = tmp_path / "drop"
    base.mkdir()
    cfg = make_config(tmp_path, db_url, None, free_port(), drop={
        "stable_seconds": 2.0, "rescan_seconds": 1.0,
        "folders": [{"name": "t", "path": str(base), "person": "tanaka"}]})
    app = App(cfg)
    app.prepare()
    app.start()
    try:
        n = 1000
        # The writers are processes of their own, as people's programs are: threads here
        # would share the interpreter lock with the daemon, which can stall a "slow" writer
        # for longer than stable_seconds on a busy machine, and then it is not slow but
        # finished, by the folder's rule.
        writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(base), mode, str(lo),
                                     str(hi), FORM]) for mode, lo, hi in
                   (("renamed", 0, 500), ("slow", 500, 1000))]
        for w in writers:
            assert w.wait(timeout=120) == 0
        # Taking is what this checks: each file stored once, whole, before it is moved.
        # (Filing 1,000 cases is the request path's speed, measured by bench/ingest.py.)
        wait_until(lambda: len(list((base / "processed").iterdir())) >= n, 600,
                   f"{n} files taken")
        with app.store.transaction() as s:
            taken = [bytes(raw).decode() for raw in s.scalars(
                select(InboundMessage.raw).where(InboundMessage.channel == "drop"))]
        assert sorted(taken) == sorted(FORM.format(n=i) for i in range(n))  # once, whole
        assert list((base / "rejected").iterdir()) == []  # none taken half-written
        assert len(list((base / "processed").iterdir())) == n
    finally:
        app.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_events_hint_and_start_rescans(tmp_path: Path, db_url: str) -> None:
    """With a one-hour rescan interval, only watchdog events can explain a quick take;
    a file that was already there before the daemon started is found by the start scan."""
    base = tmp_path / "drop"
    base.mkdir()
    (base / "before.toml").write_text(FORM.format(n=1))
    cfg = make_config(tmp_path, db_url, None, free_port(), drop={
        "stable_seconds": 0.2, "rescan_seconds": 3600,
        "folders": [{"name": "t", "path": str(base), "person": "tanaka"}]})
    app = App(cfg)
    app.prepare()
    app.start()
    try:
        wait_until(lambda: len(cases(app)) == 1, 10, "the file present at start")
        time.sleep(0.5)  # let the scanner settle into its long wait
        (base / "after.toml").write_text(FORM.format(n=2))
        wait_until(lambda: len(cases(app)) == 2, 10, "the file announced by an event")
    finally:
        app.stop()
